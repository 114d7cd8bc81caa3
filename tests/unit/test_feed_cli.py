"""`python -m k2.feed`: arguments, the summary line, the ledger file, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from k2.feed.cli import main
from k2.feed.generator import generate_frames
from k2.feed.producer import FeedProducer
from k2.feed.replay import write_frames
from tests.unit.test_feed_producer import FakeClock, FakeProducer, fake_serializer


class Opener:
    """Stands in for open_feed: records what the CLI asked for, hands out a fake feed."""

    def __init__(self, producer: FakeProducer | None = None) -> None:
        self.clock = FakeClock()
        self.producer = producer or FakeProducer(self.clock)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, bootstrap: str, registry: str, **options: Any) -> FeedProducer:
        self.calls.append((bootstrap, registry, options))
        return FeedProducer(
            self.producer,
            fake_serializer,
            topic=options["topic"],
            clock=self.clock,
            wall_clock=self.clock.wall,
        )


BASE = ["--bootstrap", "127.0.0.1:9094", "--registry", "http://127.0.0.1:8081"]


def test_generate_prints_one_summary_line_and_writes_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opener = Opener()
    ledger = tmp_path / "ledger.jsonl"
    argv = [*BASE, "--symbols", "BTCUSDT,ethusdt", "--count", "7", "--rate", "100"]
    argv += ["--seed", "3", "--ledger", str(ledger), "-X", "linger.ms=0"]
    assert main(argv, opener=opener) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "k2-feed: 7 trades in 0.06 s (116.7 msg/s) to market.crypto.trades.binance"
    )
    assert out.count("\n") == 1
    lines = ledger.read_text().splitlines()
    assert len(lines) == 7
    assert {json.loads(line)["symbol"] for line in lines} <= {"BTCUSDT", "ETHUSDT"}
    [(bootstrap, registry, options)] = opener.calls
    assert (bootstrap, registry) == ("127.0.0.1:9094", "http://127.0.0.1:8081")
    assert options == {
        "topic": "market.crypto.trades.binance",
        "producer_overrides": {"linger.ms": "0"},
    }


def test_same_seed_same_trades(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        ledger = tmp_path / f"{name}.jsonl"
        argv = [*BASE, "--symbols", "BTCUSDT", "--count", "5", "--seed", "9"]
        argv += ["--start", "2026-02-01T00:00:00+00:00", "--ledger", str(ledger)]
        assert main(argv, opener=Opener()) == 0
        runs.append([json.loads(line)["message_id"] for line in ledger.read_text().splitlines()])
    assert runs[0] == runs[1]


def test_replay_sends_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "capture.jsonl"
    write_frames(capture, generate_frames(["ETHBTC"], seed=1, count=4))
    opener = Opener()
    assert main([*BASE, "--replay", str(capture), "--topic", "t.test"], opener=opener) == 0
    assert "k2-feed: 4 trades in" in capsys.readouterr().out
    assert [topic for topic, *_ in opener.producer.messages] == ["t.test"] * 4


def test_delivery_failure_exits_1_naming_it_and_still_writes_the_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    opener = Opener(FakeProducer(failing=frozenset({0})))
    ledger = tmp_path / "ledger.jsonl"
    argv = [*BASE, "--symbols", "BTCUSDT", "--count", "3", "--ledger", str(ledger)]
    assert main(argv, opener=opener) == 1
    err = capsys.readouterr().err
    assert err.startswith("k2-feed: error: 1 of 3 deliveries to market.crypto.trades.binance")
    assert len(ledger.read_text().splitlines()) == 2


def test_an_unreachable_registry_exits_1_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refusing_opener(bootstrap: str, registry: str, **options: Any) -> FeedProducer:
        raise ConnectionRefusedError(111, "Connection refused")

    argv = [*BASE, "--symbols", "BTCUSDT", "--count", "1"]
    assert main(argv, opener=refusing_opener) == 1
    assert capsys.readouterr().err == (
        "k2-feed: error: cannot open the feed (registry http://127.0.0.1:8081): "
        "ConnectionRefusedError: [Errno 111] Connection refused\n"
    )


def test_bad_replay_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_text("not json\n")
    assert main([*BASE, "--replay", str(capture)], opener=Opener()) == 1
    assert "capture.jsonl:1: not JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--symbols", "BTCUSDT"],  # generating needs a count
        ["--count", "5"],  # and symbols
        ["--symbols", "BTCUSDT", "--count", "-1"],
        ["--symbols", "BTCUSDT", "--count", "1", "--rate", "-5"],
        ["--symbols", "BTCUSDT", "--replay", "x.jsonl", "--count", "1"],
        ["--symbols", ",", "--count", "1"],
        ["--symbols", "BTCUSDT", "--count", "1", "--start", "2026-01-01T00:00:00"],
        ["--symbols", "BTCUSDT", "--count", "1", "-X", "novalue"],
    ],
)
def test_bad_arguments_exit_2(extra: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*BASE, *extra], opener=Opener())
    assert caught.value.code == 2


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "k2.feed", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "--bootstrap" in result.stdout
