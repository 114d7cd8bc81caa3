"""SharedTable: one catalog load per interval for all requests, one at a time, no stale failure."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest
from pyiceberg.table import Table

from k2.api.shared_table import SharedTable
from tests.unit.clocks import ManualClock


class Loads:
    """A load function that hands out numbered tables and can be made to fail or block."""

    def __init__(self) -> None:
        self.count = 0
        self.fail = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self) -> Table:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise ConnectionError("catalog down")
        self.count += 1
        return cast(Table, f"table-{self.count}")


def test_requests_within_the_interval_share_one_load() -> None:
    clock, loads = ManualClock(), Loads()
    shared = SharedTable(loads, max_age_s=0.15, clock=clock)
    seen = []
    for _ in range(100):  # 100 requests 1 ms apart: 0.1 s, inside one interval
        seen.append(shared.current())
        clock.now += 0.001
    assert set(seen) == {"table-1"}
    assert loads.count == shared.loads == 1


def test_a_request_after_the_interval_loads_again() -> None:
    clock, loads = ManualClock(), Loads()
    shared = SharedTable(loads, max_age_s=0.15, clock=clock)
    assert shared.current() == "table-1"
    clock.now += 0.16
    assert shared.current() == "table-2"
    # 80 requests a second for 3 s cost at most one load per interval.
    for _ in range(240):
        shared.current()
        clock.now += 1 / 80
    assert shared.loads <= 2 + 3 / 0.15


def test_a_failed_load_raises_and_the_next_request_tries_again() -> None:
    clock, loads = ManualClock(), Loads()
    shared = SharedTable(loads, max_age_s=0.15, clock=clock)
    shared.current()
    clock.now += 0.2
    loads.fail = True
    with pytest.raises(ConnectionError):
        shared.current()
    with pytest.raises(ConnectionError):  # the old metadata is not served meanwhile
        shared.current()
    loads.fail = False
    assert shared.current() == "table-2"


def test_concurrent_requests_wait_for_the_one_load_in_flight() -> None:
    loads = Loads()
    loads.gate = threading.Event()
    shared = SharedTable(loads, max_age_s=10.0)
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(shared.current())) for _ in range(5)]
    for thread in threads:
        thread.start()
    assert loads.entered.wait(5)
    loads.gate.set()
    for thread in threads:
        thread.join(5)
    assert results == ["table-1"] * 5
    assert loads.count == 1
