"""Wait by polling a real condition with a deadline; on timeout, fail with what was last seen.

A module of its own, with no client library in it: the plugin's own tests wait with it too,
and importing the hops' Kafka and registry clients for that cost their runs a fifth of a
second before the first test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    probe: Callable[[], T],
    done: Callable[[T], bool],
    deadline_s: float,
    what: str,
    interval_s: float = 0.2,
    guard: Callable[[], None] | None = None,
) -> T:
    """Call `probe` until `done(result)`; on timeout fail with the last result seen.

    `guard`, if given, runs about once a second and raises when waiting is pointless (a
    service of the stack is down), so a broken pipeline fails in seconds.
    """
    end = time.monotonic() + deadline_s
    next_guard = time.monotonic()
    last = probe()
    while not done(last):
        now = time.monotonic()
        if now > end:
            raise AssertionError(
                f"timed out after {deadline_s:.0f}s waiting for {what}; last seen: {last!r:.1500}"
            )
        if guard is not None and now >= next_guard:
            guard()
            next_guard = now + 1.0
        time.sleep(interval_s)
        last = probe()
    return last
