"""Binance trade frames from and to JSONL files: one frame (a JSON object) per line.

Replay reads lazily, so a long capture streams instead of loading whole, and a bad line fails
with its file and line number instead of a bare JSON error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any


class ReplayError(ValueError):
    """A replay file line that is not one JSON object."""


def read_frames(path: Path | str) -> Iterator[dict[str, Any]]:
    """The frames of a JSONL file, in file order; blank lines are skipped."""
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                frame = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReplayError(f"{path}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(frame, dict):
                raise ReplayError(f"{path}:{number}: expected a JSON object, got {line[:80]!r}")
            yield frame


def write_frames(path: Path | str, frames: Iterable[Mapping[str, Any]]) -> int:
    """Write `frames` as JSONL (compact, one per line) and return how many were written."""
    written = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for frame in frames:
            out.write(json.dumps(frame, separators=(",", ":")))
            out.write("\n")
            written += 1
    return written
