"""IcebergSink against real pyiceberg commits on a dict-backed catalog writing to a temp dir.

The catalog is a stand-in for the REST catalog (no server): commits go through pyiceberg's own
requirement checks, so a stale writer gets the same CommitFailedException it would get there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import MetastoreCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder
from pyiceberg.table.update import TableRequirement, TableUpdate
from pyiceberg.typedef import EMPTY_DICT, Identifier, Properties

from k2.consumer.batch import Batch, SealedBatch
from k2.consumer.commit_timing import CommitClock
from k2.consumer.dedup import MessageIdIndex, Progress, read_hour
from k2.consumer.offsets import OFFSETS_PROPERTY, decode_offsets, stored_offsets
from k2.consumer.sink import CommitConflictError, IcebergSink, drop_landed
from k2.feed.generator import generate_frames
from k2.iceberg.table import COMMIT_NUM_RETRIES, TRADES_SCHEMA, arrow_schema, ensure_table
from k2.model.binance import from_binance_frame
from k2.model.names import CONSUMER_GROUP, ICEBERG_TABLE, TOPIC
from k2.model.trade import Trade
from tests.unit.clocks import ManualClock

INGESTED = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)


class MemoryCatalog(MetastoreCatalog):
    """Tables and namespaces in dicts, metadata and data files under a local warehouse."""

    def __init__(self, warehouse: Path) -> None:
        super().__init__("memory", warehouse=warehouse.as_uri())
        self._namespaces: dict[Identifier, Properties] = {}
        self._tables: dict[Identifier, tuple[Any, str]] = {}
        self.commits = 0
        self.fail_commits: list[Exception] = []
        """Exceptions to raise from the next commits, before they change anything."""
        self.lose_responses = 0
        """Commits to apply but answer with an error, like a response lost on the way back."""

    def create_namespace(
        self, namespace: str | Identifier, properties: Properties = EMPTY_DICT
    ) -> None:
        key = self.identifier_to_tuple(namespace)
        if key in self._namespaces:
            raise NamespaceAlreadyExistsError(str(key))
        self._namespaces[key] = dict(properties)

    def load_namespace_properties(self, namespace: str | Identifier) -> Properties:
        key = self.identifier_to_tuple(namespace)
        if key not in self._namespaces:
            raise NoSuchNamespaceError(str(key))
        return self._namespaces[key]

    def create_table(
        self,
        identifier: str | Identifier,
        schema: Schema | pa.Schema,
        location: str | None = None,
        partition_spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC,
        sort_order: SortOrder = UNSORTED_SORT_ORDER,
        properties: Properties = EMPTY_DICT,
    ) -> Table:
        key = self.identifier_to_tuple(identifier)
        if key in self._tables:
            raise TableAlreadyExistsError(str(key))
        staged = self._create_staged_table(
            identifier, schema, location, partition_spec, sort_order, properties
        )
        self._write_metadata(staged.metadata, staged.io, staged.metadata_location)
        self._tables[key] = (staged.metadata, staged.metadata_location)
        return self.load_table(identifier)

    def load_table(self, identifier: str | Identifier) -> Table:
        key = self.identifier_to_tuple(identifier)
        if key not in self._tables:
            raise NoSuchTableError(str(key))
        metadata, location = self._tables[key]
        io = self._load_file_io(metadata.properties, location)
        return Table(key, metadata, location, io, catalog=self)

    def commit_table(
        self,
        table: Table,
        requirements: tuple[TableRequirement, ...],
        updates: tuple[TableUpdate, ...],
    ) -> CommitTableResponse:
        if self.fail_commits:
            raise self.fail_commits.pop(0)
        key = table.name()
        current = self.load_table(key) if key in self._tables else None
        staged = self._update_and_stage_table(current, key, requirements, updates)
        self._write_metadata(staged.metadata, staged.io, staged.metadata_location)
        self._tables[key] = (staged.metadata, staged.metadata_location)
        self.commits += 1
        if self.lose_responses:
            self.lose_responses -= 1
            raise ConnectionError("response lost after the commit was applied")
        return CommitTableResponse.model_validate(
            {"metadata": staged.metadata, "metadata-location": staged.metadata_location}
        )

    def _unused(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    view_exists = register_table = drop_table = rename_table = drop_namespace = _unused
    list_tables = list_namespaces = list_views = update_namespace_properties = _unused
    load_view = register_view = drop_view = _unused


def trades(
    count: int, *, seed: int = 0, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
) -> list[Trade]:
    # Trade ids apart per seed: the same (symbol, trade id) is the same trade (a replay).
    frames = generate_frames(
        list(symbols), seed=seed, count=count, first_trade_id=1_000_000 + 10_000 * seed
    )
    return [from_binance_frame(frame, INGESTED) for frame in frames]


def batch_of(rows: list[tuple[int, int, Trade | None]]) -> SealedBatch:
    """A sealed batch of (partition, offset, trade) rows; a None trade is a dead letter."""
    batch = Batch()
    for partition, offset, trade in rows:
        if trade is None:
            batch.add_dead_letter(partition, offset, 0.0)
        else:
            batch.add_trade(trade, partition, offset, 0.0)
    return batch.seal()


def table_rows(table: Table) -> list[tuple[int, int]]:
    table.refresh()
    data = table.scan(selected_fields=("kafka_partition", "kafka_offset")).to_arrow()
    return sorted(
        zip(data["kafka_partition"].to_pylist(), data["kafka_offset"].to_pylist(), strict=True)
    )


@pytest.fixture
def catalog(tmp_path: Path) -> MemoryCatalog:
    return MemoryCatalog(tmp_path / "warehouse")


@pytest.fixture
def table(catalog: MemoryCatalog) -> Table:
    return ensure_table(catalog)


@pytest.fixture
def sink(table: Table) -> IcebergSink:
    return IcebergSink(table, topic=TOPIC, group=CONSUMER_GROUP, sleep=lambda _: None)


def test_the_created_table_has_exactly_the_declared_schema(table: Table) -> None:
    # A catalog renumbers a new table's field ids; the declared ids must survive that.
    assert table.schema().as_struct() == TRADES_SCHEMA.as_struct()
    assert table.schema().as_arrow().equals(arrow_schema(), check_metadata=True)


def test_commit_writes_rows_and_offsets_in_one_snapshot(table: Table, sink: IcebergSink) -> None:
    rows = trades(5)
    outcome = sink.commit(batch_of([(0, 10 + i, t) for i, t in enumerate(rows)]))

    assert outcome.committed
    assert outcome.rows == 5
    assert outcome.offsets == {0: 15}
    snapshot = table.metadata.current_snapshot()
    assert snapshot is not None
    assert snapshot.snapshot_id == outcome.snapshot_id
    assert snapshot.summary is not None
    assert json.loads(snapshot.summary[OFFSETS_PROPERTY] or "") == {
        "topic": TOPIC,
        "group": CONSUMER_GROUP,
        "partitions": {"0": 15},
    }
    assert table_rows(table) == [(0, o) for o in range(10, 15)]
    stored = table.scan(row_filter="kafka_offset == 12").to_arrow().to_pylist()
    assert stored[0]["trade_id"] == rows[2].trade_id
    assert stored[0]["price"] == rows[2].price


def test_offsets_are_cumulative_across_snapshots(table: Table, sink: IcebergSink) -> None:
    rows = trades(4)
    sink.commit(batch_of([(0, 0, rows[0]), (1, 0, rows[1])]))
    outcome = sink.commit(batch_of([(1, 1, rows[2]), (2, 7, rows[3])]))

    assert outcome.offsets == {0: 1, 1: 2, 2: 8}
    assert sink.stored_offsets() == {0: 1, 1: 2, 2: 8}
    assert len(table.metadata.snapshots) == 2


def test_a_batch_of_only_dead_letters_still_records_its_offsets(
    table: Table, sink: IcebergSink
) -> None:
    outcome = sink.commit(batch_of([(0, 0, None), (0, 1, None)]))

    assert outcome.committed
    assert outcome.rows == 0
    assert sink.stored_offsets() == {0: 2}
    assert table_rows(table) == []


def test_a_batch_already_in_the_table_is_not_written_again(
    catalog: MemoryCatalog, sink: IcebergSink
) -> None:
    batch = batch_of([(0, i, t) for i, t in enumerate(trades(3))])
    sink.commit(batch)
    commits = catalog.commits

    outcome = sink.commit(batch)

    assert not outcome.committed
    assert outcome.skipped_rows == 3
    assert catalog.commits == commits


def test_conflict_reloads_and_drops_rows_a_concurrent_writer_landed(
    catalog: MemoryCatalog, table: Table, sink: IcebergSink
) -> None:
    rows = trades(6)
    sink.commit(batch_of([(0, 0, rows[0])]))
    # A zombie writer (another instance after a rebalance) commits offsets 1-3 of partition 0.
    zombie = IcebergSink(catalog.load_table(ICEBERG_TABLE), topic=TOPIC, group=CONSUMER_GROUP)
    zombie.commit(batch_of([(0, 1, rows[1]), (0, 2, rows[2]), (0, 3, rows[3])]))

    # This writer, whose metadata predates the zombie's commit, sends offsets 2-5.
    outcome = sink.commit(
        batch_of([(0, 2, rows[2]), (0, 3, rows[3]), (0, 4, rows[4]), (0, 5, rows[5])])
    )

    assert outcome.attempts == 2
    assert outcome.rows == 2
    assert outcome.skipped_rows == 2
    assert outcome.offsets == {0: 6}
    assert table_rows(table) == [(0, o) for o in range(6)]


def test_conflict_keeps_other_partitions_offsets(
    catalog: MemoryCatalog, table: Table, sink: IcebergSink
) -> None:
    rows = trades(3)
    sink.commit(batch_of([(0, 0, rows[0])]))
    other = IcebergSink(catalog.load_table(ICEBERG_TABLE), topic=TOPIC, group=CONSUMER_GROUP)
    other.commit(batch_of([(1, 40, rows[1])]))

    outcome = sink.commit(batch_of([(0, 1, rows[2])]))

    assert outcome.offsets == {0: 2, 1: 41}


def test_a_commit_whose_answer_was_lost_is_not_repeated(
    catalog: MemoryCatalog, table: Table, sink: IcebergSink
) -> None:
    batch = batch_of([(0, i, t) for i, t in enumerate(trades(3))])
    catalog.lose_responses = 1
    with pytest.raises(ConnectionError):
        sink.commit(batch)

    outcome = sink.commit(batch)  # the writer re-reads the batch and tries again

    assert not outcome.committed
    assert table_rows(table) == [(0, 0), (0, 1), (0, 2)]


def test_gives_up_after_max_attempts(catalog: MemoryCatalog, table: Table) -> None:
    sink = IcebergSink(
        table, topic=TOPIC, group=CONSUMER_GROUP, max_attempts=3, sleep=lambda _: None
    )
    catalog.fail_commits = [CommitFailedException("busy")] * 3

    with pytest.raises(CommitConflictError):
        sink.commit(batch_of([(0, 0, trades(1)[0])]))
    assert sink.stored_offsets() == {}


def test_walks_back_past_snapshots_without_offsets(table: Table, sink: IcebergSink) -> None:
    rows = trades(2)
    sink.commit(batch_of([(0, 0, rows[0])]))
    # Something else (a compaction, a manual fix) appends without the property.
    columns = batch_of([(5, 0, rows[1])]).to_table()
    table.append(columns)

    assert sink.stored_offsets() == {0: 1}
    found = stored_offsets(table.metadata, TOPIC)
    assert found is not None
    assert found.snapshot_id != table.metadata.current_snapshot_id


def test_offsets_of_another_topic_are_ignored(table: Table) -> None:
    other = IcebergSink(table, topic="market.crypto.trades.kraken", group="g", sleep=lambda _: None)
    other.commit(batch_of([(0, 0, trades(1)[0])]))

    assert IcebergSink(table, topic=TOPIC, group=CONSUMER_GROUP).stored_offsets() == {}


def test_refuses_a_table_with_pyiceberg_commit_retries(
    catalog: MemoryCatalog, table: Table
) -> None:
    with table.transaction() as transaction:
        transaction.set_properties({COMMIT_NUM_RETRIES: "4"})

    with pytest.raises(ValueError, match=r"commit\.retry\.num-retries"):
        IcebergSink(catalog.load_table(ICEBERG_TABLE), topic=TOPIC, group=CONSUMER_GROUP)


def test_ensure_table_turns_pyiceberg_retries_off_on_an_existing_table(
    catalog: MemoryCatalog, table: Table
) -> None:
    with table.transaction() as transaction:
        transaction.remove_properties(COMMIT_NUM_RETRIES)

    again = ensure_table(catalog)

    assert again.properties[COMMIT_NUM_RETRIES] == "0"
    assert again.properties["write.parquet.compression-codec"] == "zstd"
    assert again.properties["commit.manifest-merge.enabled"] == "true"


def test_old_snapshots_are_expired_with_an_append_and_the_offsets_survive(
    table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = IcebergSink(table, topic=TOPIC, group=CONSUMER_GROUP, keep_snapshots=3)
    rows = trades(10)
    commits: list[int] = []
    commit_table = table.catalog.commit_table

    def counted(*args: Any, **kwargs: Any) -> Any:
        commits.append(1)
        return commit_table(*args, **kwargs)

    monkeypatch.setattr(table.catalog, "commit_table", counted)
    for offset, trade in enumerate(rows):
        sink.commit(batch_of([(offset % 2, offset, trade)]))

    # Commit 8 found 7 snapshots (3 kept + 4 of slack) and expired all but the newest 2 in
    # its own transaction, leaving 3; commits 9 and 10 added theirs.
    assert [s.sequence_number for s in table.metadata.snapshots] == [6, 7, 8, 9, 10]
    assert sink.stored_offsets() == {0: 9, 1: 10}
    assert len(table_rows(table)) == 10
    # One catalog commit per batch: expiry never made one of its own.
    assert len(commits) == 10


def test_drop_landed_keeps_rows_at_or_after_the_stored_offset() -> None:
    rows = trades(5)
    data = batch_of(
        [(0, 8, rows[0]), (0, 9, rows[1]), (1, 3, rows[2]), (2, 1, rows[3]), (0, 10, rows[4])]
    ).to_table()

    kept = drop_landed(data, {0: 8, 1: 3, 2: 1}, {0: 10, 1: 2})

    assert list(
        zip(kept["kafka_partition"].to_pylist(), kept["kafka_offset"].to_pylist(), strict=True)
    ) == [
        (1, 3),
        (2, 1),
        (0, 10),
    ]


def test_decoded_summary_round_trips(sink: IcebergSink, table: Table) -> None:
    sink.commit(batch_of([(3, 41, trades(1)[0])]))
    snapshot = table.metadata.current_snapshot()
    assert snapshot is not None
    assert snapshot.summary is not None

    stored = decode_offsets(snapshot.summary[OFFSETS_PROPERTY] or "")

    assert stored.partitions == {3: 42}


def _timestamps() -> Iterator[datetime]:
    yield datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    yield datetime(1970, 1, 1, tzinfo=UTC)
    yield datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    yield datetime(2026, 3, 2, tzinfo=UTC)
    yield datetime(1900, 1, 1, 12, tzinfo=UTC)


def test_the_hour_read_after_a_restart_keeps_its_commit_alive(table: Table) -> None:
    """The first commit of a new process reads its hour's message ids, file by file.

    The writer's K2_COMMIT_DEADLINE_S times a commit's silence (`commit_idle_s`): every file
    of the read must count as progress, or a large hour on a slow machine is given up on and
    the restart reads it again, for ever.
    """
    earlier = IcebergSink(table, topic=TOPIC, group=CONSUMER_GROUP, sleep=lambda _: None)
    stored = trades(9)
    for first in range(0, 9, 3):  # three commits: three data files of one hour
        earlier.commit(batch_of([(0, o, stored[o]) for o in range(first, first + 3)]))
    files = len(list(table.scan().plan_files()))
    clock = ManualClock(0.0)
    sink: IcebergSink
    idle: list[tuple[float | None, float | None]] = []

    def slow_read(table: Table, hour: datetime, progress: Progress) -> set[str]:
        def batch_in() -> None:
            clock.now += 2.0  # each file takes 2 s to come in
            before = sink.commit_idle_s()
            progress()
            idle.append((before, sink.commit_idle_s()))

        return read_hour(table, hour, batch_in)

    sink = IcebergSink(
        table,
        topic=TOPIC,
        group=CONSUMER_GROUP,
        timing=CommitClock(clock),
        message_ids=MessageIdIndex(reader=slow_read),
    )
    outcome = sink.commit(batch_of([(0, 9, trades(1, seed=5)[0])]))

    assert outcome.rows == 1
    assert files > 1
    assert idle == [(2.0, 0.0)] * files
    assert sink.commit_idle_s() is None  # no commit running
