"""A failure's log tail that a flood of one repeated line cannot push out of view.

A client retrying a connection logs the same line, with other numbers, many times a second
(librdkafka's "Connect to ... failed: Connection refused"); the last 40 lines of such a log
were all that line, and the cause said earlier was gone from the failure message. So the
tail is read long and folded: a line whose shape (digits aside) appears again later is kept
only at its last appearance, which says how many like it came before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_DIGITS = re.compile(r"\d+")


def _shape(line: str) -> str:
    return _DIGITS.sub("#", line)


def fold(lines: Sequence[str], keep: int) -> list[str]:
    """The last `keep` distinct lines of `lines`, oldest first, repeats folded into a count."""
    repeats: dict[str, int] = {}
    kept: list[tuple[int, str]] = []
    for index in range(len(lines) - 1, -1, -1):
        shape = _shape(lines[index])
        if shape in repeats:
            repeats[shape] += 1
            continue
        if len(kept) == keep:
            break
        repeats[shape] = 0
        kept.append((index, shape))
    folded = []
    for index, shape in reversed(kept):
        line = lines[index]
        if repeats[shape]:
            line += f"  [and {repeats[shape]} more like it before]"
        folded.append(line)
    return folded
