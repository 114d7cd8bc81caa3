"""Hop times and the performance report, from hand-made observations (no Docker).

The observations are what PipelineWatch records and the ledger holds; the assertions check
that each trade gets the commit and the API answer that really first covered it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from pyiceberg.table import Table

from k2.feed.ledger import LedgerEntry
from k2.model import Trade
from tests.e2e.utils.performance_monitor import (
    MeasurementError,
    Percentiles,
    PerformanceMonitor,
    RunResult,
    _poll_gap,
    hop_times,
)
from tests.e2e.utils.pipeline_watch import CommitSeen, PipelineWatch, Visibility

T0 = 1_800_000_000.0  # wall clock of the first send (epoch seconds)
MONO0 = 500.0  # the same moment on the monotonic clock


def _entry(
    symbol: str, n: int, partition: int, offset: int, sent: float, ack: float
) -> LedgerEntry:
    when = datetime.fromtimestamp(T0 + sent, UTC)
    trade = Trade.new(
        trade_id=f"BINANCE-{n}",
        symbol=symbol,
        exchange="BINANCE",
        asset_class="crypto",
        timestamp=when,
        price="1.00000000",
        quantity="2.00000000",
        currency="USDT",
        side="BUY",
        ingestion_timestamp=when,
    )
    return LedgerEntry(
        trade=trade,
        partition=partition,
        offset=offset,
        sent_monotonic=MONO0 + sent,
        ack_monotonic=MONO0 + ack,
        ack_wall=datetime.fromtimestamp(T0 + ack, UTC),
    )


def _commit(seq: int, at: float, **nexts: int) -> CommitSeen:
    return CommitSeen(seq, seq, T0 + at, {int(p[1:]): o for p, o in nexts.items()})


def _seen(symbol: str, total: int, at: float) -> Visibility:
    return Visibility(symbol, total, T0 + at, 0.01, T0 + at)


ENTRIES = [
    _entry("AAAUSDT", 1, 0, 10, sent=0.0, ack=0.1),
    _entry("BBBUSDT", 2, 1, 50, sent=0.2, ack=0.3),
    _entry("AAAUSDT", 3, 0, 11, sent=0.4, ack=0.5),
]
COMMITS = [
    _commit(1, 1.0, p0=11, p1=40),  # offset 10 of p0 only
    _commit(2, 2.0, p0=12, p1=51),  # the rest
]
SEEN = [
    _seen("AAAUSDT", 0, 0.9),
    _seen("AAAUSDT", 1, 1.5),
    _seen("BBBUSDT", 1, 2.5),
    _seen("AAAUSDT", 2, 2.7),
    _seen("AAAUSDT", 2, 2.9),
]


def test_each_trade_gets_its_first_covering_commit_and_first_api_answer() -> None:
    times = {t.message_id: t for t in hop_times(ENTRIES, COMMITS, SEEN)}
    first, second, third = (times[e.message_id] for e in ENTRIES)
    assert first.acked_s == pytest.approx(0.1)
    assert first.committed_s == pytest.approx(1.0)
    assert first.visible_s == pytest.approx(1.5)
    assert second.committed_s == pytest.approx(1.8)  # commit 2 at 2.0, sent at 0.2
    assert second.visible_s == pytest.approx(2.3)
    assert third.committed_s == pytest.approx(1.6)
    assert third.visible_s == pytest.approx(2.3)
    assert first.sent_at == pytest.approx(T0)


def test_a_trade_never_served_is_a_measurement_error_not_a_number() -> None:
    with pytest.raises(MeasurementError, match="1 were never seen served by the API"):
        hop_times(ENTRIES, COMMITS, SEEN[:3])
    with pytest.raises(MeasurementError, match="2 are in no observed commit"):
        hop_times(ENTRIES, COMMITS[:1], SEEN)


def test_percentiles_are_inclusive_order_statistics() -> None:
    values = [float(v) for v in range(1, 101)]
    p = Percentiles.of(values)
    assert (p.count, p.p50, p.p95, p.p99, p.max) == (100, 50.5, 95.05, 99.01, 100.0)
    assert Percentiles.of([2.0]) == Percentiles(1, 2.0, 2.0, 2.0, 2.0)
    with pytest.raises(MeasurementError):
        Percentiles.of([])


class _Watch:
    """What RunResult reads from a PipelineWatch."""

    def __init__(self, missed: list[int] | None = None) -> None:
        self.commits = COMMITS
        self.visibility = SEEN
        self.missed = missed or []

    def missed_commits(self) -> list[int]:
        return self.missed


def _run(name: str = "unit") -> RunResult:
    return RunResult.from_watch(name, 10.0, ENTRIES, _Watch())  # type: ignore[arg-type]


def test_run_result_rates_and_json_round_trip() -> None:
    run = _run()
    assert run.trades == 3
    assert run.symbols == 2
    assert run.produced_rate == pytest.approx(5.0)  # 2 gaps over 0.4 s
    assert run.delivered_rate == pytest.approx(3 / 2.7, abs=0.1)
    assert run.commits == 2
    assert run.freshness.max == pytest.approx(2.3)
    data = json.loads(json.dumps(run.to_json()))
    assert RunResult.from_json(data).to_json() == run.to_json()


def test_monitor_writes_json_and_plot_and_a_summary_table(tmp_path: Path) -> None:
    monitor = PerformanceMonitor(slo_s=5.0)
    assert monitor.write(tmp_path) == []
    monitor.add(_run("freshness 10/s"))
    monitor.extend_from_json([_run("from a worker").to_json()])
    json_path, plot_path = monitor.write(tmp_path)
    document: dict[str, Any] = json.loads(json_path.read_text())
    assert [r["name"] for r in document["runs"]] == ["freshness 10/s", "from a worker"]
    assert document["slo_freshness_p99_s"] == 5.0
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = monitor.summary_lines()
    assert lines[0].split()[:2] == ["run", "trades"]
    assert lines[1].startswith("freshness 10/s")
    assert "SLO p99 <= 5 s" in lines[-1]


class _Table:
    def __init__(self, snapshots: list[Any]) -> None:
        self.metadata = type("Metadata", (), {"snapshots": snapshots})()


class _Snapshot:
    def __init__(self, snapshot_id: int, at_ms: int, summary: dict[str, str] | None) -> None:
        self.snapshot_id = snapshot_id
        self.sequence_number = snapshot_id
        self.timestamp_ms = at_ms
        self.summary = summary


def _offsets(**nexts: int) -> dict[str, str]:
    body = {p[1:]: o for p, o in nexts.items()}
    return {
        "k2.kafka.offsets": json.dumps(
            {"topic": "market.crypto.trades.binance", "group": "g", "partitions": body}
        )
    }


@contextmanager
def _watching(
    answer: Callable[[httpx.Request], httpx.Response], table: _Table
) -> Iterator[PipelineWatch]:
    """A running watch of AAAUSDT over a fake API and a fake table."""
    with (
        httpx.Client(transport=httpx.MockTransport(answer), base_url="http://api") as api,
        PipelineWatch(api, ["AAAUSDT"], lambda: cast(Table, table)) as watch,
    ):
        yield watch


def _total(n: int) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json={"pagination": {"total": n}})


def test_watch_records_api_answers_and_only_new_consumer_commits() -> None:
    totals = iter(range(1, 1000))

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.params["limit"] == "1"
        return httpx.Response(200, json={"pagination": {"total": next(totals)}})

    snapshots = [_Snapshot(1, 1_000, _offsets(p0=5))]
    with _watching(answer, _Table(snapshots)) as watch:
        snapshots.append(_Snapshot(2, 2_000, _offsets(p0=9)))
        snapshots.append(_Snapshot(3, 3_000, None))  # not the consumer's: no offsets
        watch.wait_until_visible({"AAAUSDT": 3}, deadline_s=5)
    watch.raise_if_failed()
    assert [c.snapshot_id for c in watch.commits] == [2]  # 1 predates the watch
    assert watch.commits[0].next_offsets == {0: 9}
    assert watch.commits[0].committed_at == 2.0
    assert watch.totals()["AAAUSDT"] >= 3


def test_watch_fails_loudly_when_the_api_errors_and_on_its_deadline() -> None:
    down = lambda request: httpx.Response(503, json={"detail": "down"})  # noqa: E731
    with _watching(down, _Table([])) as watch, pytest.raises(AssertionError, match="_poll_api"):
        watch.wait_until_visible({"AAAUSDT": 1}, deadline_s=5)
    last_seen = r"last seen: \{'AAAUSDT': 0\}"
    with _watching(_total(0), _Table([])) as watch, pytest.raises(AssertionError, match=last_seen):
        watch.wait_until_visible({"AAAUSDT": 1}, deadline_s=0.3)


def test_watch_guard_stops_the_wait_at_once() -> None:
    def guard() -> None:
        raise RuntimeError("consumer-crypto is exited (137)")

    with _watching(_total(0), _Table([])) as watch, pytest.raises(RuntimeError, match="exited"):
        watch.wait_until_visible({"AAAUSDT": 1}, deadline_s=60, guard=guard)


def test_a_watch_that_missed_commits_fails_the_measurement() -> None:
    with pytest.raises(MeasurementError, match="missed 2 commits"):
        RunResult.from_watch("unit", 10.0, ENTRIES, _Watch(missed=[7, 8]))  # type: ignore[arg-type]


def test_the_verdict_context_names_the_machine_the_hops_and_the_costs() -> None:
    run = RunResult.from_watch(
        "unit",
        10.0,
        ENTRIES,
        _Watch(),  # type: ignore[arg-type]
        costs={
            "cores": {"consumer-crypto": 0.5, "machine": 1.9},
            "machine_cores": 2,
            "api_requests_per_s": 60.0,
            "catalog_loads_per_api_request": 0.08,
            "commit_timing_ms": {"commits": 3, "total": {"p50": 300.0, "p95": 500.0}},
        },
        machine={"calibration_ms": 140.0, "cpu_limit_cores": 1.0},
    )
    context = run.context()
    assert "calibration_ms 140.0" in context
    assert "cpu_limit_cores 1.0" in context
    assert "commit " in context
    assert "consumer commits, last 3 (p50/p95 ms): total 300/500" in context
    assert "consumer-crypto 0.50, machine 1.90" in context
    assert "60.0 API requests/s, 0.08 catalog loads per request" in context


def test_visibility_is_timed_to_the_gap_before_the_answer_that_first_showed_a_snapshot() -> None:
    answers = [
        Visibility("AUSDT", 0, T0 + 0.00, 0.01, T0 + 0.00),
        Visibility("AUSDT", 0, T0 + 0.00, 0.01, T0 + 0.06),  # the same snapshot again
        Visibility("BUSDT", 2, T0 + 0.12, 0.01, T0 + 0.12),  # first showed a new snapshot
        Visibility("AUSDT", 1, T0 + 0.12, 0.01, T0 + 0.13),  # asked at once, dated by it
        Visibility("CUSDT", 3, T0 + 0.30, 0.01, T0 + 0.30),  # the next snapshot
    ]
    assert _poll_gap(answers) == pytest.approx((0.06 + 0.17) / 2)
