"""Send pacing at a fixed rate against a monotonic clock, catching up after a stall.

Message n is due at start + n/rate, computed from the start each time, so sleeping late never
accumulates into drift: after a stall the messages that fell behind go out at once until the
schedule is met again, and a run of `count` messages at `rate` takes count/rate seconds.

With `slack_s`, a message due within that much of now goes out at once: messages leave in
small bursts and the sender sleeps once per burst instead of once per message (at 1,000
msg/s and 5 ms, 200 wake-ups a second instead of 2,000). Each message's own send time is still
recorded by the sender, so nothing measured depends on the slack; the run's rate does not
change either, since the schedule is kept from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Call `wait()` before each message; it returns when that message is due.

    `clock` and `sleep` are injectable: the producer passes its poll() as `sleep`, so delivery
    reports are served while it waits, and tests pass a fake clock.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        slack_s: float = 0.0,
    ) -> None:
        if rate is not None and rate < 0:
            raise ValueError(f"rate={rate} msg/s is negative")
        self._interval = 1.0 / rate if rate else None  # None or 0: as fast as possible
        self._clock = clock
        self._sleep = sleep
        self._slack_s = slack_s
        self._start: float | None = None
        self._count = 0

    def wait(self) -> None:
        """Block until the next message is due (never, when unpaced or behind schedule)."""
        if self._interval is None:
            return
        now = self._clock()
        if self._start is None:
            self._start = now
        due = self._start + self._count * self._interval
        self._count += 1
        # A loop, not one sleep: poll() as sleep returns early whenever it served a report.
        while now < due - self._slack_s:
            self._sleep(due - now)
            now = self._clock()
