"""A monotonic clock for unit tests: time moves only when the test (or a sleep) moves it."""

from __future__ import annotations


class ManualClock:
    """Callable like time.monotonic; `sleep` records the wait and advances the clock.

    Args:
        now: Where the clock starts (any value: code under test only takes differences).
    """

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Pass `seconds` at once, remembering that they were asked for."""
        self.sleeps.append(seconds)
        self.now += seconds
