"""How fast this machine runs a fixed CPU workload: the figure that makes timings comparable.

Machines of the same size differ (one 2-vCPU machine ran plain Python twice as slowly as
another), so a freshness p99 or a ready time means little without knowing which machine
produced it. Every benchmark result and every timing verdict carries this figure: the time
one core needs for a fixed pure-Python workload (integer arithmetic and dict stores, like
the services' own hot loops), best of a few rounds so that a busy moment does not count.
A larger figure is a slower machine; figures compare across machines only for the same
`WORKLOAD` name.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

WORKLOAD: Final = "py-int-dict-1M-v1"
"""Names the workload below; change it whenever the workload changes."""
ROUNDS: Final = 3


def _workload() -> int:
    table: dict[int, int] = {}
    total = 0
    for i in range(1_000_000):
        total += i * i % 7
        table[i & 1023] = total
    return total


@dataclass(frozen=True, slots=True)
class Calibration:
    """The workload's best time on one core, in milliseconds, and the rounds it took."""

    workload: str
    best_ms: float
    rounds_ms: tuple[float, ...]

    def to_json(self) -> dict[str, object]:
        """Plain JSON for result files."""
        return {"workload": self.workload, "best_ms": self.best_ms, "rounds_ms": self.rounds_ms}

    def __str__(self) -> str:
        return f"calibration {self.best_ms:.0f} ms ({self.workload}, best of {len(self.rounds_ms)})"


def measure(
    rounds: int = ROUNDS,
    workload: Callable[[], object] = _workload,
    clock: Callable[[], float] = time.perf_counter,
) -> Calibration:
    """Run the workload `rounds` times and keep the fastest (about 0.2-0.5 s in all)."""
    times = []
    for _ in range(rounds):
        began = clock()
        workload()
        times.append(round((clock() - began) * 1000, 1))
    return Calibration(WORKLOAD, min(times), tuple(times))


@functools.cache
def machine() -> Calibration:
    """This process's calibration, measured once on first use (not at import or start-up)."""
    return measure()
