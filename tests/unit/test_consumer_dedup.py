"""The message-id index: exact while the head is its snapshot, bounded, re-read when needed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pyarrow as pa
from pyiceberg.table import Table

from k2.consumer.dedup import MessageIdIndex, Progress

H0 = datetime(2026, 1, 1, 10, tzinfo=UTC)
H1 = H0 + timedelta(hours=1)


@dataclass
class Snapshot:
    snapshot_id: int


class FakeTable:
    """The head snapshot and the ids stored per hour: what the index may read."""

    def __init__(self) -> None:
        self.head: int | None = 1
        self.stored: dict[datetime, set[str]] = {H0: {"a"}, H1: {"b"}}
        self.reads: list[datetime] = []

    def current_snapshot(self) -> Snapshot | None:
        return None if self.head is None else Snapshot(self.head)

    def read(self, table: Any, hour: datetime, progress: Progress) -> set[str]:
        self.reads.append(hour)
        progress()
        return set(self.stored.get(hour, set()))


def rows(*items: tuple[str, datetime]) -> pa.Table:
    return pa.table(
        {
            "message_id": [m for m, _ in items],
            "timestamp": pa.array([t for _, t in items], pa.timestamp("us", tz="UTC")),
        }
    )


def ids(table: pa.Table) -> list[str]:
    return cast(list[str], table["message_id"].to_pylist())


def test_ids_the_table_holds_are_dropped_per_hour() -> None:
    fake = FakeTable()
    index = MessageIdIndex(reader=fake.read)
    table = cast(Table, fake)

    kept = index.new_rows(table, rows(("a", H0), ("b", H0), ("b", H1), ("c", H1)))

    assert ids(kept) == ["b", "c"]  # "b" of H0 is another trade time: not the stored "b"
    assert fake.reads == [H0, H1]


def test_an_evicted_hour_is_read_again_and_stays_exact() -> None:
    fake = FakeTable()
    index = MessageIdIndex(max_hours=1, reader=fake.read)
    table = cast(Table, fake)

    assert ids(index.new_rows(table, rows(("a", H0)))) == []
    assert ids(index.new_rows(table, rows(("b", H1)))) == []
    assert ids(index.new_rows(table, rows(("a", H0), ("z", H0)))) == ["z"]
    assert fake.reads == [H0, H1, H0]


def test_own_commits_are_remembered_without_a_read() -> None:
    fake = FakeTable()
    index = MessageIdIndex(reader=fake.read)
    table = cast(Table, fake)
    new = index.new_rows(table, rows(("n", H0)))
    fake.head = 2  # this writer's commit made the new head
    index.committed(new, table)

    assert ids(index.new_rows(table, rows(("n", H0), ("m", H0)))) == ["m"]
    assert fake.reads == [H0]


def test_a_head_moved_by_someone_else_is_read_again() -> None:
    fake = FakeTable()
    index = MessageIdIndex(reader=fake.read)
    table = cast(Table, fake)
    index.new_rows(table, rows(("x", H0)))
    fake.head = 7  # another writer appended "x"
    fake.stored[H0].add("x")

    assert ids(index.new_rows(table, rows(("x", H0)))) == []
    assert fake.reads == [H0, H0]


def test_an_empty_table_reads_nothing() -> None:
    fake = FakeTable()
    fake.head = None
    index = MessageIdIndex(reader=fake.read)

    assert ids(index.new_rows(cast(Table, fake), rows(("a", H0), ("a", H0)))) == ["a"]
    assert fake.reads == []


def test_an_hour_read_tells_its_caller_it_is_alive() -> None:
    """The read serves a commit whose deadline times silence; each hour read says it moved."""
    fake = FakeTable()
    index = MessageIdIndex(reader=fake.read)
    beats: list[None] = []

    index.new_rows(cast(Table, fake), rows(("a", H0), ("c", H1)), lambda: beats.append(None))

    assert len(beats) == len(fake.reads) == 2
