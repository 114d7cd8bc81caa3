"""Sample the stack's CPU and memory in the background, for the end-of-run summary.

`docker stats --no-stream` itself takes about a second and some engine CPU, so sampling is
spaced out; peaks are what the summary needs, not a time series.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from e2e_stack.engine import Engine, EngineError

SAMPLE_EVERY_S = 15.0
"""Each sample is a `compose ps` and a `docker stats` (measured: 0.25 CPU-seconds together on a
2-core machine), so sampling is sparse: the summary needs peaks, not a time series."""


@dataclass
class Peak:
    """Highest CPU percentage and memory seen for one service."""

    cpu_percent: float = 0.0
    memory_mib: float = 0.0


class StatsSampler:
    """A daemon thread that keeps per-service peaks until stopped."""

    def __init__(self, engine: Engine, every_s: float = SAMPLE_EVERY_S) -> None:
        self._engine = engine
        self._every_s = every_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.peaks: dict[str, Peak] = {}

    def start(self) -> None:
        """Begin sampling (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="e2e-stack-stats", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            # No long join: a `docker stats` in flight takes a second or two; the thread is a
            # daemon and its last sample is simply not waited for.
            self._thread.join(timeout=0.2)

    def sample_once(self) -> None:
        """Take one sample now."""
        for service, (cpu, memory_mib) in self._engine.stats().items():
            with self._lock:
                peak = self.peaks.setdefault(service, Peak())
                peak.cpu_percent = max(peak.cpu_percent, cpu)
                peak.memory_mib = max(peak.memory_mib, memory_mib)

    def _run(self) -> None:
        while not self._stop.is_set():
            # The stack may be coming up or going down; the next sample will tell.
            with contextlib.suppress(EngineError):
                self.sample_once()
            self._stop.wait(self._every_s)
