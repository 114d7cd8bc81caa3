"""The Iceberg side without a catalog: replica, pushdown, error mapping, /health, timeouts.

Covered: the replica's lineage logic, the repository's pushdown scans and error mapping,
/health over a failing catalog, and the catalog client's HTTP timeouts. A fake table stands
in for pyiceberg's: real Snapshot objects, and scans that record what they were asked for, so
the tests check what the repository requests, not pyiceberg itself.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import anyio
import pyarrow as pa
import pytest
import requests
from fastapi.testclient import TestClient
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot, Summary

from k2.api import catalog as catalog_module
from k2.api import compute, iceberg_repository
from k2.api import replica as replica_module
from k2.api.app import create_app
from k2.api.catalog import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    TimeoutRestCatalog,
    _TimeoutAdapter,
    catalog_properties,
)
from k2.api.filters import iceberg_row_filter
from k2.api.health import HealthProbe
from k2.api.iceberg_repository import IcebergTradeRepository
from k2.api.memory import trades_table
from k2.api.query import PageRequest, TradeFilter
from k2.api.replica import TradeReplica
from k2.api.repository import RepositoryUnavailableError
from k2.api.settings import Settings
from k2.api.symbol_index import SymbolIndex, symbol_page
from k2.model.trade import Trade
from tests.unit import trades

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ALWAYS = AlwaysTrue()


def make_trade(n: int, symbol: str = "BTCUSDT") -> Trade:
    return trades.make_trade(n, symbol=symbol, timestamp=T0 + timedelta(seconds=n))


@dataclass
class FakeScan:
    rows: pa.Table

    def to_arrow(self) -> pa.Table:
        return self.rows


@dataclass
class FakeInput:
    present: bool

    def exists(self) -> bool:
        return self.present


@dataclass
class FakeIO:
    present: bool = True
    error: Exception | None = None

    def new_input(self, location: str) -> FakeInput:
        if self.error is not None:
            raise self.error
        return FakeInput(self.present)


@dataclass
class FakeMetadata:
    table_uuid: uuid.UUID
    snapshots: list[Snapshot] = field(default_factory=list)

    def snapshot_by_id(self, snapshot_id: int) -> Snapshot | None:
        return next((s for s in self.snapshots if s.snapshot_id == snapshot_id), None)


class FakeTable:
    """Commits are (operation, rows added); scans return rows and record their arguments."""

    def __init__(self) -> None:
        self.metadata = FakeMetadata(uuid.uuid4())
        self.io = FakeIO()
        self.added: dict[int, pa.Table] = {}
        self.scans: list[tuple[BooleanExpression, tuple[str, ...]]] = []
        self.incremental_scans: list[tuple[int, int]] = []
        self._rows = trades_table([])

    def commit(self, operation: Operation, trades: list[Trade] | None = None) -> Snapshot:
        parent = self.current_snapshot()
        added = trades_table(trades or [])
        if operation in (Operation.OVERWRITE, Operation.DELETE):
            self._rows = added  # a rewrite: the table is now exactly these rows
        elif operation == Operation.APPEND:
            self._rows = pa.concat_tables([self._rows, added])
        snapshot = Snapshot.model_validate(
            {
                "snapshot-id": len(self.metadata.snapshots) + 1000,
                "parent-snapshot-id": parent.snapshot_id if parent else None,
                "sequence-number": len(self.metadata.snapshots) + 1,
                "timestamp-ms": 1_767_268_800_000,
                "manifest-list": f"s3://warehouse/snap-{len(self.metadata.snapshots)}.avro",
                "summary": Summary(
                    operation,
                    **{"total-records": str(self._rows.num_rows), "total-data-files": "3"},
                ),
                "schema-id": 0,
            }
        )
        self.metadata.snapshots.append(snapshot)
        self.added[snapshot.snapshot_id] = added
        return snapshot

    def current_snapshot(self) -> Snapshot | None:
        return self.metadata.snapshots[-1] if self.metadata.snapshots else None

    def scan(
        self, row_filter: BooleanExpression = ALWAYS, selected_fields: tuple[str, ...] = ()
    ) -> FakeScan:
        self.scans.append((row_filter, selected_fields))
        return FakeScan(self._rows)

    def incremental_append_scan(
        self,
        *,
        from_snapshot_id_exclusive: int,
        to_snapshot_id_inclusive: int,
        selected_fields: tuple[str, ...],
    ) -> FakeScan:
        self.incremental_scans.append((from_snapshot_id_exclusive, to_snapshot_id_inclusive))
        ids = [s.snapshot_id for s in self.metadata.snapshots]
        first = ids.index(from_snapshot_id_exclusive) + 1
        last = ids.index(to_snapshot_id_inclusive)
        added = [
            self.added[i]
            for i in ids[first : last + 1]
            if self.metadata.snapshot_by_id(i).summary.operation == Operation.APPEND  # type: ignore[union-attr]
        ]
        return FakeScan(pa.concat_tables([trades_table([]), *added]))


class FakeCatalog:
    def __init__(self, table: FakeTable | None = None, error: Exception | None = None) -> None:
        self.table = table
        self.error = error
        self.loads = 0

    def load_table(self, identifier: str) -> Table:
        self.loads += 1
        if self.error is not None:
            raise self.error
        if self.table is None:
            raise NoSuchTableError(identifier)
        return cast(Table, self.table)


def as_table(fake: FakeTable) -> Table:
    return cast(Table, fake)


def message_ids(rows: pa.Table) -> set[str]:
    return set(rows.column("message_id").to_pylist())


# -- replica ------------------------------------------------------------------------------


def test_replica_loads_in_full_once_then_only_what_appends_added() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1), make_trade(2)])
    replica = TradeReplica()
    first = replica.view(as_table(table))
    assert first is not None
    assert first.rows.num_rows == 2
    snapshot = table.commit(Operation.APPEND, [make_trade(3)])
    table.commit(Operation.APPEND, [make_trade(4, "ETHUSDT")])
    second = replica.view(as_table(table))
    assert second is not None
    assert message_ids(second.rows) == {make_trade(n).message_id for n in (1, 2, 3)} | {
        make_trade(4, "ETHUSDT").message_id
    }
    assert (replica.full_loads, replica.incremental_loads) == (1, 1)
    assert table.incremental_scans == [(first.snapshot_id, table.current_snapshot().snapshot_id)]  # type: ignore[union-attr]
    assert snapshot.snapshot_id != second.snapshot_id


def test_replica_is_reused_while_the_snapshot_stays() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    replica = TradeReplica()
    assert replica.view(as_table(table)) is replica.view(as_table(table))
    assert (replica.full_loads, replica.incremental_loads) == (1, 0)


def test_compaction_costs_nothing_and_overwrite_reloads() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1), make_trade(2)])
    replica = TradeReplica()
    replica.view(as_table(table))
    table.commit(Operation.REPLACE)
    kept = replica.view(as_table(table))
    assert kept is not None
    assert kept.rows.num_rows == 2
    assert (replica.full_loads, replica.incremental_loads) == (1, 0)
    table.commit(Operation.OVERWRITE, [make_trade(2)])
    table.commit(Operation.APPEND, [make_trade(5)])
    reloaded = replica.view(as_table(table))
    assert reloaded is not None
    assert message_ids(reloaded.rows) == {make_trade(2).message_id, make_trade(5).message_id}
    assert replica.full_loads == 2


def test_replica_reloads_when_the_table_was_recreated() -> None:
    old = FakeTable()
    old.commit(Operation.APPEND, [make_trade(1)])
    replica = TradeReplica()
    replica.view(as_table(old))
    new = FakeTable()
    new.commit(Operation.APPEND, [make_trade(7)])
    view = replica.view(as_table(new))
    assert view is not None
    assert message_ids(view.rows) == {make_trade(7).message_id}
    assert replica.full_loads == 2


def test_replica_turns_off_past_max_rows_and_stays_off() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(n) for n in range(3)])
    replica = TradeReplica(max_rows=2)
    assert replica.view(as_table(table)) is None
    assert replica.off_reason is not None
    assert "max_rows 2" in replica.off_reason
    assert table.scans == []  # known from the snapshot summary: nothing was read
    table.commit(Operation.APPEND, [make_trade(9)])
    assert replica.view(as_table(table)) is None
    assert TradeReplica(max_rows=0).view(as_table(table)) is None


def test_replica_encodes_short_strings_as_dictionaries() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    view = TradeReplica().view(as_table(table))
    assert view is not None
    assert pa.types.is_dictionary(view.rows.schema.field("symbol").type)
    assert view.rows.column_names == list(compute.TRADE_COLUMNS)


def test_replica_index_grows_with_each_append_and_answers_as_the_rows_do() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(n, ("BTCUSDT", "ETHUSDT")[n % 2]) for n in range(6)])
    replica = TradeReplica()
    first = replica.view(as_table(table))
    assert first is not None
    table.commit(Operation.APPEND, [make_trade(n, "ETHUSDT") for n in range(10, 13)])
    table.commit(Operation.APPEND, [make_trade(20, "SOLUSDT")])
    second = replica.view(as_table(table))
    assert second is not None
    assert second.index.num_rows == second.rows.num_rows == 10
    # The old batches and their grouping are reused as they are; only the new rows were read.
    assert second.index.batches[: len(first.index.batches)] == first.index.batches
    assert all(a is b for a, b in zip(second.index.rows_of, first.index.rows_of, strict=False))
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"):
        where = TradeFilter(symbol=symbol)
        page, total = symbol_page(second.index, PageRequest(3, 1), where)
        expected, expected_total = compute.newest_first_page(second.rows, PageRequest(3, 1), where)
        assert (page.to_pylist(), total) == (expected.to_pylist(), expected_total)


def test_replica_regroups_its_index_when_it_combines_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replica_module, "_MAX_CHUNKS", 2)
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    replica = TradeReplica()
    replica.view(as_table(table))
    for n in range(2, 5):
        table.commit(Operation.APPEND, [make_trade(n), make_trade(n + 10, "ETHUSDT")])
        view = replica.view(as_table(table))
        assert view is not None
        assert view.index.num_rows == view.rows.num_rows
    view = replica.view(as_table(table))
    assert view is not None
    assert view.rows.column(0).num_chunks <= 2
    page, total = symbol_page(view.index, PageRequest(10, 0), TradeFilter(symbol="ETHUSDT"))
    assert total == 3
    assert page.column("trade_id").to_pylist() == ["BINANCE-14", "BINANCE-13", "BINANCE-12"]


def test_repository_answers_symbol_queries_from_the_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(n, ("BTCUSDT", "ETHUSDT")[n % 2]) for n in range(9)])
    repo = repository(table)
    calls: list[TradeFilter] = []

    def counted(index: SymbolIndex, page: PageRequest, where: TradeFilter) -> tuple[pa.Table, int]:
        calls.append(where)
        return symbol_page(index, page, where)

    monkeypatch.setattr(iceberg_repository, "symbol_page", counted)
    page = anyio.run(repo.trades, TradeFilter(symbol="ETHUSDT"), PageRequest(2, 1))
    assert (page.total, page.rows.column("trade_id").to_pylist()) == (4, ["BINANCE-5", "BINANCE-3"])
    anyio.run(repo.trades, TradeFilter(exchange="BINANCE"), PageRequest(2, 0))
    assert calls == [TradeFilter(symbol="ETHUSDT")]  # no symbol: the plain path


# -- repository ---------------------------------------------------------------------------


def repository(table: FakeTable, **kwargs: Any) -> IcebergTradeRepository:
    catalog = FakeCatalog(table)
    return IcebergTradeRepository(lambda: cast(Catalog, catalog), **kwargs)


def test_repository_pages_from_the_replica_with_fresh_metadata_each_call() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(n) for n in range(5)])
    repo = repository(table)

    async def scenario() -> None:
        page = await repo.trades(TradeFilter(symbol="BTCUSDT"), PageRequest(2, 1))
        assert page.total == 5
        assert page.rows.column("trade_id").to_pylist() == ["BINANCE-3", "BINANCE-2"]
        table.commit(Operation.APPEND, [make_trade(9)])
        newest = await repo.trades(TradeFilter(), PageRequest(1, 0))
        assert newest.rows.column("trade_id").to_pylist() == ["BINANCE-9"]

    anyio.run(scenario)
    assert repo.replica.incremental_loads == 1


def test_repository_reports_where_a_request_spent_its_time() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    page = anyio.run(repository(table).trades, TradeFilter(), PageRequest(1, 0))
    assert list(page.timings) == ["queue", "catalog", "read", "page"]
    assert all(ms >= 0 for ms in page.timings.values())


def test_repository_without_replica_pushes_filters_and_projection_down() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(n) for n in range(3)])
    repo = repository(table, replica_max_rows=0)
    where = TradeFilter(symbol="BTCUSDT", start=T0, end=T0 + timedelta(hours=1))
    page = anyio.run(repo.trades, where, PageRequest(10, 0))
    assert page.total == 3
    assert table.scans == [(iceberg_row_filter(where), compute.TRADE_COLUMNS)]
    summary = anyio.run(repo.day_summary, "BTCUSDT", date(2026, 1, 1))
    assert summary is not None
    assert summary.trade_count == 3
    row_filter, fields = table.scans[-1]
    assert fields == compute.SUMMARY_COLUMNS
    assert "symbol" in repr(row_filter)
    assert "timestamp" in repr(row_filter)


def test_repository_stats_read_the_snapshot() -> None:
    table = FakeTable()
    snapshot = table.commit(Operation.APPEND, [make_trade(1), make_trade(2, "ETHUSDT")])
    stats = anyio.run(repository(table).stats)
    assert stats.row_count == 2
    assert stats.symbol_count == 2
    assert stats.snapshot_id == snapshot.snapshot_id
    assert stats.snapshot_time == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert stats.latest_trade == T0 + timedelta(seconds=2)
    assert stats.data_file_count == 3


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (requests.ConnectionError("refused"), "catalog unreachable"),
        (NoSuchTableError("market_data.trades"), "does not exist"),
        (OSError("no route"), "catalog unreachable"),
    ],
)
def test_repository_maps_catalog_failures_to_unavailable(error: Exception, words: str) -> None:
    catalog = FakeCatalog(error=error)
    repo = IcebergTradeRepository(lambda: cast(Catalog, catalog))
    with pytest.raises(RepositoryUnavailableError, match=words):
        anyio.run(repo.symbols)
    with pytest.raises(RepositoryUnavailableError, match=words):
        anyio.run(repo.readiness)


def test_catalog_connection_is_retried_until_it_works() -> None:
    table = FakeTable()
    attempts: list[int] = []

    def connect() -> Catalog:
        attempts.append(1)
        if len(attempts) == 1:
            raise requests.ConnectionError("catalog still starting")
        return cast(Catalog, FakeCatalog(table))

    repo = IcebergTradeRepository(connect)
    with pytest.raises(RepositoryUnavailableError):
        anyio.run(repo.readiness)
    assert anyio.run(repo.readiness).snapshot_id is None
    assert len(attempts) == 2


def test_readiness_checks_the_storage_too() -> None:
    table = FakeTable()
    snapshot = table.commit(Operation.APPEND, [make_trade(1)])
    repo = repository(table)
    assert anyio.run(repo.readiness).snapshot_id == snapshot.snapshot_id
    table.io = FakeIO(present=False)
    with pytest.raises(RepositoryUnavailableError, match="no manifest list"):
        anyio.run(repo.readiness)
    table.io = FakeIO(error=OSError("AWS Error ACCESS_DENIED"))
    with pytest.raises(RepositoryUnavailableError, match="storage unreachable"):
        anyio.run(repo.readiness)


def test_a_probe_cut_off_by_its_timeout_names_the_step_it_waited_for() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    repo = repository(table)
    released = threading.Event()

    class HangingIO(FakeIO):
        def new_input(self, location: str) -> FakeInput:
            released.wait(5)  # MinIO paused: the HEAD request hangs
            return super().new_input(location)

    table.io = HangingIO()
    try:
        result = anyio.run(HealthProbe(repo, timeout=0.2).check)
    finally:
        released.set()
    assert not result.ok
    assert result.reason == (
        "trade store did not answer within 0.2 s "
        "(waiting for the storage to answer for the manifest list)"
    )


def test_not_ready_while_the_first_copy_of_the_table_is_read() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    repo = repository(table)
    filling = repo._replica._lock  # held: another thread (the follower) reads the first copy
    with filling, pytest.raises(RepositoryUnavailableError, match="reading the table into memory"):
        anyio.run(repo.readiness)
    assert anyio.run(repo.readiness).snapshot_id is not None
    assert repo._replica.latest is not None  # ready means the copy is there


# -- /health over the Iceberg repository --------------------------------------------------


@pytest.fixture
def failing_catalog() -> FakeCatalog:
    return FakeCatalog(error=requests.ConnectionError("Connection refused"))


@pytest.fixture
def health_client(failing_catalog: FakeCatalog) -> Iterator[TestClient]:
    repo = IcebergTradeRepository(lambda: cast(Catalog, failing_catalog))
    with TestClient(create_app(repo, api_key="k")) as client:
        yield client


def test_health_is_503_with_reason_when_the_catalog_fails(health_client: TestClient) -> None:
    response = health_client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "catalog unreachable" in body["reason"]
    assert "Connection refused" in body["reason"]


def test_health_recovers_at_the_next_probe(
    health_client: TestClient, failing_catalog: FakeCatalog
) -> None:
    assert health_client.get("/health").status_code == 503
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    failing_catalog.error = None
    failing_catalog.table = table
    response = health_client.get("/health")
    assert response.status_code == 200
    assert response.json()["snapshot_id"] == table.current_snapshot().snapshot_id  # type: ignore[union-attr]


def test_health_is_503_while_the_table_does_not_exist() -> None:
    catalog = FakeCatalog(table=None)
    repo = IcebergTradeRepository(lambda: cast(Catalog, catalog))
    with TestClient(create_app(repo, api_key="k")) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert "does not exist" in response.json()["reason"]


# -- catalog client -----------------------------------------------------------------------


def test_catalog_properties_carry_s3_settings_and_timeouts() -> None:
    settings = Settings(
        api_key="k",
        iceberg_uri="http://cat:8181",
        s3_endpoint="http://s3:9000",
        s3_access_key="ak",
        s3_secret_key="sk",
        s3_region="eu-west-1",
    )
    properties = catalog_properties(settings)
    assert properties["uri"] == "http://cat:8181"
    assert properties["s3.endpoint"] == "http://s3:9000"
    assert properties["s3.access-key-id"] == "ak"
    assert properties["s3.secret-access-key"] == "sk"
    assert properties["s3.region"] == "eu-west-1"
    assert float(properties["s3.request-timeout"]) > 0
    keyless = catalog_properties(Settings(api_key="k"))
    assert "s3.access-key-id" not in keyless
    assert "s3.secret-access-key" not in keyless


def test_every_catalog_session_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # The constructor fetches the catalog config; stop it there and inspect the session.
    sessions: list[requests.Session] = []

    def capture(self: TimeoutRestCatalog) -> None:
        sessions.append(self._create_session())

    monkeypatch.setattr(TimeoutRestCatalog, "_fetch_config", capture)
    TimeoutRestCatalog("k2", uri="http://cat:8181")
    adapter = sessions[0].get_adapter("http://cat:8181/v1/config")
    assert isinstance(adapter, _TimeoutAdapter)
    assert adapter._timeout == (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)


def test_a_catalog_that_never_answers_fails_at_the_read_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A socket that listens but never accepts: the connection opens, no answer ever comes.
    # Without the adapter's read timeout this call would hang for good.
    monkeypatch.setattr(catalog_module, "READ_TIMEOUT_S", 0.3)
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        started = datetime.now(UTC)
        with pytest.raises(requests.ReadTimeout):
            TimeoutRestCatalog("k2", uri=f"http://127.0.0.1:{port}")
    assert datetime.now(UTC) - started < timedelta(seconds=5)


def test_replica_newer_than_the_loaded_metadata_is_served_as_is() -> None:
    # Two requests race: the second loaded metadata before the first refreshed past it.
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    stale = FakeTable()
    stale.metadata = FakeMetadata(table.metadata.table_uuid, list(table.metadata.snapshots))
    table.commit(Operation.APPEND, [make_trade(2)])
    replica = TradeReplica()
    newest = replica.view(as_table(table))
    assert replica.view(as_table(stale)) is newest
    assert replica.full_loads == 1


def test_replica_follows_a_rollback() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    table.commit(Operation.APPEND, [make_trade(2)])
    replica = TradeReplica()
    replica.view(as_table(table))
    rolled_back = FakeTable()
    rolled_back.metadata = FakeMetadata(table.metadata.table_uuid, table.metadata.snapshots)
    rolled_back.current_snapshot = lambda: table.metadata.snapshots[0]  # type: ignore[method-assign]
    rolled_back._rows = trades_table([make_trade(1)])
    view = replica.view(as_table(rolled_back))
    assert view is not None
    assert message_ids(view.rows) == {make_trade(1).message_id}


def test_follower_keeps_the_replica_current_and_stops_with_the_app() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    repo = repository(table)
    stops: list[threading.Event] = []

    def follow(stop: threading.Event) -> None:
        stops.append(stop)
        repo.follow(stop)

    with TestClient(create_app(repo, api_key="k", background=follow)):
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while repo.replica.full_loads == 0 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.01)
        assert repo.replica.full_loads == 1
    # The app handed its stop event to the follower and set it on shutdown.
    assert len(stops) == 1
    assert stops[0].is_set()


def test_follower_survives_a_failing_catalog() -> None:
    catalog = FakeCatalog(error=requests.ConnectionError("down"))
    repo = IcebergTradeRepository(lambda: cast(Catalog, catalog))
    stop = threading.Event()
    worker = threading.Thread(target=repo.follow, args=(stop, 0.01))
    worker.start()
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while catalog.loads < 3 and datetime.now(UTC) < deadline:
        threading.Event().wait(0.01)
    stop.set()
    worker.join(timeout=5)
    assert catalog.loads >= 3
    assert not worker.is_alive()


def test_while_the_follower_keeps_up_requests_touch_no_catalog() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(n) for n in range(3)])
    catalog = FakeCatalog(table)
    repo = IcebergTradeRepository(lambda: cast(Catalog, catalog), table_max_age_s=0.05)
    stop = threading.Event()
    worker = threading.Thread(target=repo.follow, args=(stop,))
    worker.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while repo.replica.latest is None and datetime.now(UTC) < deadline:
            threading.Event().wait(0.01)
        loads_before = repo.catalog_loads()
        for _ in range(20):  # within one max age: served from the follower's view
            page = anyio.run(repo.trades, TradeFilter(), PageRequest(10, 0))
            assert page.total == 3
        assert repo.catalog_loads() == loads_before
        table.commit(Operation.APPEND, [make_trade(7)])
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while anyio.run(repo.trades, TradeFilter(), PageRequest(1, 0)).total < 4:
            assert datetime.now(UTC) < deadline, "the follower never brought the commit"
            threading.Event().wait(0.01)
    finally:
        stop.set()
        worker.join(timeout=5)


def test_without_a_follower_keeping_up_a_request_loads_and_refreshes_itself() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    catalog = FakeCatalog(table)
    repo = IcebergTradeRepository(lambda: cast(Catalog, catalog), table_max_age_s=0.0)
    assert anyio.run(repo.trades, TradeFilter(), PageRequest(1, 0)).total == 1
    table.commit(Operation.APPEND, [make_trade(2)])
    assert anyio.run(repo.trades, TradeFilter(), PageRequest(1, 0)).total == 2
    assert catalog.loads == 2


def test_a_page_names_the_snapshot_it_was_read_from() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    repo = repository(table)
    first = anyio.run(repo.trades, TradeFilter(), PageRequest(1, 0))
    table.commit(Operation.APPEND, [make_trade(2)])
    second = anyio.run(repo.trades, TradeFilter(), PageRequest(1, 0))
    assert first.snapshot_id is not None
    assert second.snapshot_id not in (None, first.snapshot_id)
