"""How fresh the API's data is, and how much the pipeline carries, measured on the real stack.

Freshness of a trade = from the moment the feed sent it to the moment the API first served
it. The feed runs at a controlled rate while a PipelineWatch times every trade at each hop;
the performance monitor turns that into percentiles, a JSON file, a plot and a summary table.
Every run is also held to exactness: a fast pipeline that loses trades is not green.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from e2e_stack import Engine, Target, calibration
from k2.feed.pool import FeedPool
from k2.model.names import ICEBERG_TABLE
from tests.e2e.utils.data_validator import assert_hops, compare, from_trade
from tests.e2e.utils.docker_manager import E2EDockerManager
from tests.e2e.utils.hops import Endpoints, api_records, api_total, expect_arrival, unique_symbols
from tests.e2e.utils.performance_monitor import PerformanceMonitor, RunResult
from tests.e2e.utils.pipeline_watch import PipelineWatch
from tests.e2e.utils.polling import poll_until
from tests.e2e.utils.run_costs import CostMeter

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.operational,  # feeds its own symbols, controls no container
    pytest.mark.usefixtures("warm_pipeline"),
]

SYMBOLS_PER_RUN = 4
DRAIN_DEADLINE_S = 90.0
RATE_TOLERANCE = 0.99
"""A paced run must reach 99% of its rate, or it did not test that rate."""


WARM_UP_TRADES = 5_000


@pytest.fixture(scope="session")
def _warmed() -> list[bool]:
    """Whether this session's stack was warmed up already (once is enough)."""
    return []


@pytest.fixture
def warm_pipeline(
    _warmed: list[bool],
    endpoints: Endpoints,
    api: httpx.Client,
    stack_guard: Callable[[], None],
    feed_pool: FeedPool,
) -> None:
    """Push trades through once before anything is timed: runs measure steady state.

    A stack that has just started commits its first batches slowly (the consumer's storage
    client and the JVMs warm up: seconds, once); that is start-up, not freshness. The
    warm-up trades are held to exactness like any others.
    """
    if _warmed:
        return
    symbols = unique_symbols(SYMBOLS_PER_RUN)
    ledger = feed_pool.send(symbols, count=WARM_UP_TRADES, rate=1000, seed=5)
    produced = [from_trade(entry.trade) for entry in ledger]
    expect_arrival(
        lambda: poll_until(
            lambda: sum(api_total(api, symbol) for symbol in symbols),
            lambda served: served >= len(produced),
            DRAIN_DEADLINE_S,
            f"the {len(produced)} warm-up trades through the API",
            guard=stack_guard,
        ),
        endpoints,
        api,
        produced,
        symbols,
    )
    _warmed.append(True)


@pytest.fixture
def stack_containers(
    request: pytest.FixtureRequest, stack_target: Target | None
) -> tuple[Engine, list[str]] | None:
    """The engine and the services whose CPU a run's costs count; None for an external target.

    A deployment's containers are not ours to inspect: its runs report the test side's
    costs and the API's catalog counter only.
    """
    if stack_target is not None:
        return None
    manager: E2EDockerManager = request.getfixturevalue("docker_manager")
    return manager.project.engine, sorted(manager.project.config["services"])


def machine_context(cpus: float | None) -> dict[str, Any]:
    """The calibration figure (measured once per session) and the CPU limit, if any."""
    figure = calibration.machine()
    return {
        "calibration_ms": figure.best_ms,
        "calibration_workload": figure.workload,
        "cpu_limit_cores": cpus,
    }


def _measured_run(
    name: str,
    rate: float | None,
    count: int,
    seed: int,
    endpoints: Endpoints,
    api: httpx.Client,
    guard: Callable[[], None],
    containers: tuple[Engine, list[str]] | None,
    monitor: PerformanceMonitor,
    feed: FeedPool,
    cpus: float | None,
) -> RunResult:
    """Feed `count` trades at `rate` (None: flat out), time every hop, check exactness."""
    symbols = unique_symbols(SYMBOLS_PER_RUN)
    catalog = endpoints.catalog()
    machine = machine_context(cpus)
    with PipelineWatch(api, symbols, lambda: catalog.load_table(ICEBERG_TABLE)) as watch:
        meter = CostMeter(
            containers,
            feed.pids,
            endpoints.api_url,
            endpoints.consumer_health_url,
            lambda: watch.requests,
        )
        before = meter.snapshot()
        ledger = feed.send(symbols, count=count, rate=rate, seed=seed)
        produced = [from_trade(entry.trade) for entry in ledger]
        expected = Counter(record["symbol"] for record in produced)
        expect_arrival(
            lambda: watch.wait_until_visible(expected, DRAIN_DEADLINE_S, guard),
            endpoints,
            api,
            produced,
            symbols,
        )
        costs = meter.report(before, meter.snapshot())
    watch.raise_if_failed()
    assert_hops(compare("api", produced, api_records(api, symbols)))
    result = monitor.add(
        RunResult.from_watch(name, rate, ledger.entries, watch, costs=costs, machine=machine)
    )
    if rate is not None:
        assert (result.produced_rate or 0) >= RATE_TOLERANCE * rate, (
            f"{name}: the load generator sent only {result.produced_rate} msg/s of {rate}, so "
            f"this run did not test that rate (a problem of the test machine, not the "
            f"pipeline)\n{result.context()}"
        )
    return result


def test_freshness_at_1000_msgs_for_30s_is_within_the_slo(
    endpoints: Endpoints,
    api: httpx.Client,
    stack_guard: Callable[[], None],
    stack_containers: tuple[Engine, list[str]] | None,
    performance_monitor: PerformanceMonitor,
    feed_pool: FeedPool,
    e2e_cpus: float | None,
) -> None:
    rate, seconds = 1000, 30
    result = _measured_run(
        f"freshness {rate}/s x {seconds}s",
        rate,
        rate * seconds,
        61,
        endpoints,
        api,
        stack_guard,
        stack_containers,
        performance_monitor,
        feed_pool,
        e2e_cpus,
    )
    slo = performance_monitor.slo_s
    assert result.freshness.p99 <= slo, (
        f"freshness p99 {result.freshness.p99:.2f} s exceeds the SLO of {slo:g} s "
        f"(p50 {result.freshness.p50:.2f}, p95 {result.freshness.p95:.2f})\n{result.context()}"
    )


@pytest.mark.parametrize(
    ("rate", "count"),
    [(10, 50), (100, 500), (1000, 5000), (None, 20_000)],
    ids=["10/s", "100/s", "1000/s", "max"],
)
def test_rate_ramp_delivers_every_trade_and_records_throughput(
    rate: int | None,
    count: int,
    endpoints: Endpoints,
    api: httpx.Client,
    stack_guard: Callable[[], None],
    stack_containers: tuple[Engine, list[str]] | None,
    performance_monitor: PerformanceMonitor,
    feed_pool: FeedPool,
    e2e_cpus: float | None,
) -> None:
    """Five seconds per paced step; the last step sends as fast as the feed can."""
    _measured_run(
        f"ramp {rate}/s" if rate else "ramp max",
        rate,
        count,
        71 + count,
        endpoints,
        api,
        stack_guard,
        stack_containers,
        performance_monitor,
        feed_pool,
        e2e_cpus,
    )
