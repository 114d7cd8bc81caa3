"""Replays dedup by message_id: a trade the table already holds is not appended again.

`message_id` is deterministic (uuid5 of symbol and trade id), so a producer's resend after an
ambiguous ack, or a feed replaying a stretch, carries ids the table may already hold, at
other Kafka offsets: the offsets in the snapshot summary cannot tell, the ids can.

The table is the memory. The index below is only a view of it: the message_ids the table holds
for some hours of trade time, read from the table (a scan of that hour, `message_id` only) the
first time a batch holds a trade of that hour, then kept current with this writer's own
commits. It is exact because it is tied to a snapshot: it reflects the table as of `as_of`, and
is used only while the table's head is that snapshot (the commit that follows asserts the same
head). Any other head (another writer's commit, an answer lost, a rollback) throws it away and
hours are read again. A replay carries its trade's original timestamp, so it meets its
original's hour whatever its age.

Memory is bounded: at most `max_hours` hours are held, least recently used dropped first (a
dropped hour is read again from the table if a replay of it comes). At about 100 bytes per id,
an hour of 200 trades a second is about 70 MB; 4 hours, the default, cover a live feed's
out-of-order trades and a replay of the recent past without a second read.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import And, BooleanExpression, GreaterThanOrEqual, LessThan
from pyiceberg.table import Table

from k2.model.timestamps import to_micros

log = logging.getLogger(__name__)

DEFAULT_MAX_HOURS: Final = 4
_HOUR: Final = timedelta(hours=1)

Progress = Callable[[], object]
"""Called as a read moves on (a batch of ids in): the commit it serves is alive, not hung."""
HourReader = Callable[[Table, datetime, Progress], set[str]]


# pyiceberg's predicates are pydantic models whose own __init__ takes (term, literal); mypy
# sees only the generated keyword signature.
_AT_LEAST: Callable[..., BooleanExpression] = GreaterThanOrEqual
_BEFORE: Callable[..., BooleanExpression] = LessThan


def read_hour(table: Table, hour: datetime, progress: Progress) -> set[str]:
    """The message_ids `table` holds for trades in [hour, hour + 1 h), read from its files.

    Batch by batch (pyiceberg still reads the files in parallel), calling `progress` after
    each: a busy hour is hundreds of files and can take seconds on a slow machine.
    """
    scan = table.scan(
        row_filter=And(
            _AT_LEAST("timestamp", to_micros(hour)), _BEFORE("timestamp", to_micros(hour + _HOUR))
        ),
        selected_fields=("message_id",),
    )
    held: set[str] = set()
    for batch in scan.to_arrow_batch_reader():
        held.update(batch.column("message_id").to_pylist())
        progress()
    return held


def _unobserved() -> None:
    """The default `progress`: nobody is timing the read."""


class MessageIdIndex:
    """The message_ids the table holds, per hour of trade time, for the hours being written."""

    def __init__(self, max_hours: int = DEFAULT_MAX_HOURS, reader: HourReader = read_hour) -> None:
        self._max_hours = max(1, max_hours)
        self._reader = reader
        self._hours: OrderedDict[datetime, set[str]] = OrderedDict()
        self._as_of: int | None = None
        self.hours_read = 0

    def new_rows(self, table: Table, rows: pa.Table, progress: Progress = _unobserved) -> pa.Table:
        """`rows` without trades `table` holds already and without repeats within `rows`.

        The first of several rows with one message_id is kept. Hours read from the table call
        `progress` as they go.
        """
        if rows.num_rows == 0:
            return rows
        self._follow(table)
        ids = rows["message_id"].to_pylist()
        hours = pc.floor_temporal(rows["timestamp"], unit="hour").to_pylist()
        seen: set[str] = set()
        keep: list[bool] = []
        for message_id, hour in zip(ids, hours, strict=True):
            fresh = message_id not in seen and message_id not in self._held(table, hour, progress)
            seen.add(message_id)
            keep.append(fresh)
        if all(keep):
            return rows
        return rows.filter(pa.array(keep, pa.bool_()))

    def committed(self, rows: pa.Table, table: Table) -> None:
        """`rows` were appended by the commit that made `table`'s current head."""
        snapshot = table.current_snapshot()
        self._as_of = snapshot.snapshot_id if snapshot is not None else None
        hours = pc.floor_temporal(rows["timestamp"], unit="hour").to_pylist()
        for message_id, hour in zip(rows["message_id"].to_pylist(), hours, strict=True):
            held = self._hours.get(hour)
            if held is not None:
                held.add(message_id)

    def forget(self) -> None:
        """Drop everything (the table's head is no longer known)."""
        self._hours.clear()
        self._as_of = None

    def _follow(self, table: Table) -> None:
        snapshot = table.current_snapshot()
        head = snapshot.snapshot_id if snapshot is not None else None
        if head != self._as_of:
            if self._hours:
                log.info("table head moved to %s by someone else: re-reading message ids", head)
            self._hours.clear()
            self._as_of = head

    def _held(self, table: Table, hour: datetime, progress: Progress) -> set[str]:
        held = self._hours.get(hour)
        if held is not None:
            self._hours.move_to_end(hour)
            return held
        began = time.perf_counter()
        held = self._reader(table, hour, progress) if self._as_of is not None else set()
        self.hours_read += 1
        log.info(
            "read %d message ids of trades at %s from the table in %.0f ms",
            len(held),
            hour.isoformat(),
            (time.perf_counter() - began) * 1000,
        )
        self._hours[hour] = held
        while len(self._hours) > self._max_hours:
            self._hours.popitem(last=False)
        return held
