"""Sample the stack's CPU and memory in the background, for the end-of-run summary.

`docker stats --no-stream` itself takes about a second and some engine CPU, so sampling is
spaced out; peaks are what the summary needs, not a time series.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

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

    def __init__(self, docker: DockerClient, every_s: float = SAMPLE_EVERY_S) -> None:
        self._docker = docker
        self._every_s = every_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.peaks: dict[str, Peak] = {}

    def start(self) -> None:
        """Begin sampling (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="k2-stats", daemon=True)
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
        containers = self._docker.compose.ps()
        if not containers:
            return
        service_of = {
            c.name: (c.config.labels or {}).get("com.docker.compose.service", c.name)
            for c in containers
        }
        for stat in self._docker.stats(containers):
            service = service_of.get(stat.container_name, stat.container_name)
            with self._lock:
                peak = self.peaks.setdefault(service, Peak())
                peak.cpu_percent = max(peak.cpu_percent, float(stat.cpu_percentage or 0.0))
                peak.memory_mib = max(peak.memory_mib, (stat.memory_used or 0) / 2**20)

    def _run(self) -> None:
        while not self._stop.is_set():
            # The stack may be coming up or going down; the next sample will tell.
            with contextlib.suppress(DockerException):
                self.sample_once()
            self._stop.wait(self._every_s)
