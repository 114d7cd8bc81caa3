"""JSONL replay of Binance frames: exact round trip, lazy reading, errors with line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from k2.feed.generator import generate_frames
from k2.feed.replay import ReplayError, read_frames, write_frames


def test_written_frames_read_back_identically(tmp_path: Path) -> None:
    frames = list(generate_frames(["BTCUSDT", "ETHUSDT"], seed=4, count=100))
    path = tmp_path / "capture.jsonl"
    assert write_frames(path, frames) == 100
    assert len(path.read_text().splitlines()) == 100
    assert list(read_frames(path)) == frames


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text('\n{"stream": "a"}\n   \n{"stream": "b"}\n\n')
    assert [frame["stream"] for frame in read_frames(path)] == ["a", "b"]


def test_a_bad_line_is_reported_with_file_and_line_after_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text('{"stream": "a"}\n{"stream": "b"}\n{"stream": \n')
    frames = read_frames(path)
    assert next(frames)["stream"] == "a"
    assert next(frames)["stream"] == "b"
    with pytest.raises(ReplayError, match=r"capture.jsonl:3: not JSON"):
        next(frames)


def test_a_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "capture.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(ReplayError, match=r":1: expected a JSON object"):
        list(read_frames(path))


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list(read_frames(tmp_path / "absent.jsonl"))
