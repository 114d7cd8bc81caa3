"""What a measured run cost the machine, so a slow pipeline can be told from a slow machine.

Around each measured run this reads, from counters the kernel and the services already keep
(nothing is sampled while the run goes on):

- CPU cores used by each service of the stack, by the feed's worker processes, by the test
  process (the pipeline watch) and by the machine as a whole;
- what the watch asked of k2-query-api (requests a second) and what those requests cost the
  catalog (catalog loads per API request, from the API's own counter);
- where consumer-crypto's recent commits spent their time (its /health timing summary).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from e2e_stack import Engine, cpu_meter


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counters at one moment."""

    at: float
    cpu: cpu_meter.CpuReading
    catalog_loads: int | None
    api_requests: int


def _health(url: str) -> dict[str, Any]:
    try:
        document: dict[str, Any] = httpx.get(url, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return document


class CostMeter:
    """Reads the counters before and after a run; `report` turns them into the run's costs.

    Args:
        containers: the stack's engine adapter (container pids come from it) and the
            services to account for; None for a deployment that is not ours to inspect.
        feed_pids: the feed's worker processes.
        api_url, consumer_health_url: where /health answers for the API and the consumer.
        api_requests: how many requests the watch has made so far (read at each snapshot).
    """

    def __init__(
        self,
        containers: tuple[Engine, Iterable[str]] | None,
        feed_pids: Iterable[int],
        api_url: str,
        consumer_health_url: str,
        api_requests: Callable[[], int],
    ) -> None:
        self._containers: dict[str, int] = {}
        if containers is not None:
            engine, services = containers
            states = engine.observe(sorted(services))
            self._containers = {name: state.pid for name, state in states.items() if state.pid}
        self._processes = {"feed workers": list(feed_pids), "pytest (watch)": [os.getpid()]}
        self._api_url = api_url
        self._consumer_health_url = consumer_health_url
        self._api_requests = api_requests

    def snapshot(self) -> Snapshot:
        """The counters now."""
        loads = _health(f"{self._api_url}/health").get("catalog_loads")
        return Snapshot(
            at=time.monotonic(),
            cpu=cpu_meter.read(self._containers, self._processes),
            catalog_loads=loads if isinstance(loads, int) else None,
            api_requests=self._api_requests(),
        )

    def report(self, before: Snapshot, after: Snapshot) -> dict[str, Any]:
        """The run's costs as plain JSON (cores are averages over the run)."""
        wall = after.at - before.at
        requests = after.api_requests - before.api_requests
        loads = (
            after.catalog_loads - before.catalog_loads
            if after.catalog_loads is not None and before.catalog_loads is not None
            else None
        )
        return {
            "wall_s": round(wall, 2),
            "cores": after.cpu.since(before.cpu, wall),
            "machine_cores": os.cpu_count(),
            "api_requests_per_s": round(requests / wall, 1) if wall > 0 else None,
            "catalog_loads_per_api_request": (
                round(loads / requests, 3) if loads is not None and requests else None
            ),
            "commit_timing_ms": _health(self._consumer_health_url).get("commit_timing_ms", {}),
        }
