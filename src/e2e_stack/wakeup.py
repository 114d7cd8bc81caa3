"""Wake a wait when the engine reports a change to the project's containers, not on a timer.

Polling costs two CLI start-ups per look (about 55 ms of CPU), four looks a second: a fifth
of a core taken from services that are starting on two cores. `docker events` is one process
that sleeps until a container of the project is created, starts, dies or changes health, so
the wait looks exactly when there is something to see. A slow timer stays underneath for
what no event announces (a deadline passing, compose finishing without a container).
"""

from __future__ import annotations

import subprocess
import threading
from types import TracebackType
from typing import IO, Final, Self

from e2e_stack.engine import Engine, EngineError

ACTIONS: Final = ("create", "start", "restart", "die", "health_status", "destroy")
"""What changes a wait strategy's verdict."""
FALLBACK_S: Final = 1.0
"""Longest wait without an event: deadlines and compose's end are checked this often."""
WITHOUT_EVENTS_S: Final = 0.25
"""The timer when no event stream runs (it failed to start or ended): plain polling."""
STOP_TIMEOUT_S: Final = 5.0


class EngineEvents:
    """A `docker events` stream of one project's containers, as a wake-up for its waits.

    Use as a context manager, entered before the change it should see starts (before `up`),
    so that no event is missed; `wait` then returns when something happened, or after its
    timeout. `poke` wakes a wait from this process (compose's `up` ended).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._changed = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.seen = 0
        """Events received so far (for tests and reports)."""

    def __enter__(self) -> Self:
        try:
            self._proc = self._engine.container_events(ACTIONS)
        except EngineError:
            return self  # polling on the timer still works; only its cost is higher
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), name="e2e-stack-events", daemon=True
        )
        self._reader.start()
        return self

    def _read(self, stream: IO[str]) -> None:
        for _line in stream:
            self.seen += 1
            self._changed.set()

    @property
    def streaming(self) -> bool:
        """Whether events arrive (the stream started and has not ended)."""
        return self._reader is not None and self._reader.is_alive()

    def wait(self, timeout: float = FALLBACK_S) -> bool:
        """Until an event (or a poke) since the last wait, or `timeout`; True if woken."""
        if not self.streaming:
            timeout = min(timeout, WITHOUT_EVENTS_S)
        woken = self._changed.wait(timeout)
        self._changed.clear()
        return woken

    def sleep(self, _seconds: float) -> None:
        """A polling loop's `time.sleep`, ended by the next event (at most FALLBACK_S)."""
        self.wait(FALLBACK_S)

    def poke(self) -> None:
        """Wake the wait now."""
        self._changed.set()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=STOP_TIMEOUT_S)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
