"""One batch, one Iceberg commit: rows and the offsets they cover land together or not at all.

The commit is optimistic: pyiceberg asserts the branch head is the snapshot this writer last
saw. If another commit got there first (CommitFailedException), the sink reloads the table,
reads the offsets the new head records, drops the rows that are already in (a concurrent
writer's, or an earlier attempt whose answer was lost) and tries again with the merged map. It
drops too the rows whose message_id the table holds already (a replay, see `dedup`). It
never relies on pyiceberg's own commit retry, which would replay the same rows and the same,
now stale, offsets onto the new head: `ensure_table` turns that retry off for this table.

The sink also expires old snapshots (metadata only; no file is deleted), keeping about the
newest `keep_snapshots`: at one commit a second the snapshot list would otherwise grow by 3600
an hour, and pyiceberg 0.12 deep-copies the whole table metadata about 19 times per append, so
commits slow down with every snapshot kept (measured: 60 ms at the first commit, 780 ms at the
600th; with 50-100 snapshots kept, 18 ms per copy and a third of each commit on a 2-core
machine). Expiry rides in the append's own transaction, once a few snapshots are over the
limit: no separate catalog commit (one in ten commits used to pay for a second one). Eight to
twelve snapshots cover the last seconds of commits, which is what readers following the
table need.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.update.snapshot import ExpireSnapshots

from k2.consumer.batch import SealedBatch
from k2.consumer.commit_timing import CLOCK, CommitBreakdown, CommitClock
from k2.consumer.dedup import MessageIdIndex
from k2.consumer.offsets import (
    OFFSETS_PROPERTY,
    encode_offsets,
    landed_partitions,
    merge_offsets,
    stored_offsets,
)
from k2.iceberg.table import COMMIT_NUM_RETRIES, TRADES_SCHEMA

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS: Final = 8
DEFAULT_KEEP_SNAPSHOTS: Final = 8
EXPIRE_SLACK: Final = 4
"""Snapshots allowed over `keep_snapshots` before expiring: each expired id costs pyiceberg
two metadata copies, so a few go at once rather than one per commit."""


class CommitConflictError(RuntimeError):
    """Every attempt lost the race to another writer; the batch stays uncommitted."""


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """What one batch did to the table."""

    committed: bool
    """False when the table already held everything the batch covers (nothing written)."""
    rows: int
    """Rows appended by this commit."""
    skipped_rows: int
    """Rows of the batch that were already in the table."""
    offsets: dict[int, int]
    """The table's cumulative next offsets after this batch."""
    snapshot_id: int | None
    attempts: int
    seconds: float
    breakdown: CommitBreakdown | None = None
    """Where the commit's time went (see commit_timing)."""
    replayed_rows: int = 0
    """Rows of the batch dropped because the table holds their message_id (replays)."""


def drop_landed(
    data: pa.Table, first_offsets: Mapping[int, int], stored: Mapping[int, int]
) -> pa.Table:
    """`data` without the rows whose offset is below the table's next offset for their partition."""
    landed = landed_partitions(first_offsets, stored)
    if not landed:
        return data
    partition = data["kafka_partition"]
    offset = data["kafka_offset"]
    keep = pc.invert(pc.is_in(partition, value_set=pa.array(sorted(landed), pa.int32())))
    for p in landed:
        keep = pc.or_(keep, pc.and_(pc.equal(partition, p), pc.greater_equal(offset, stored[p])))
    return data.filter(keep)


class IcebergSink:
    """Commits sealed batches to one table, recording offsets in each snapshot summary.

    Thread-safe: the writer commits from a worker thread while the rebalance callback reads the
    stored offsets from the consumer's thread.
    """

    def __init__(
        self,
        table: Table,
        *,
        topic: str,
        group: str,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        keep_snapshots: int = DEFAULT_KEEP_SNAPSHOTS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        timing: CommitClock = CLOCK,
        message_ids: MessageIdIndex | None = None,
    ) -> None:
        if table.schema().as_struct() != TRADES_SCHEMA.as_struct():
            raise ValueError(
                f"table {table.name()} does not have k2.iceberg.table.TRADES_SCHEMA (field ids "
                f"included), so appends of arrow_schema() rows would fail: {table.schema()}"
            )
        retries = table.metadata.properties.get(COMMIT_NUM_RETRIES)
        if retries != "0":
            raise ValueError(
                f"table {table.name()} has {COMMIT_NUM_RETRIES}={retries!r}: pyiceberg would "
                "replay a conflicting commit with stale offsets; create it with ensure_table"
            )
        self.topic = topic
        self.group = group
        self._table = table
        self._max_attempts = max_attempts
        self._keep_snapshots = max(1, keep_snapshots)
        self._sleep = sleep
        self._clock = clock
        self._timing = timing
        self._lock = threading.Lock()
        self._stale = False
        self._ids = message_ids or MessageIdIndex()

    def stored_offsets(self, *, refresh: bool = True) -> dict[int, int]:
        """The next offset per partition that the table's newest snapshot records (may be empty)."""
        with self._lock:
            if refresh or self._stale:
                self._table.refresh()
                self._stale = False
            found = stored_offsets(self._table.metadata, self.topic)
            return dict(found.partitions) if found is not None else {}

    def commit_idle_s(self) -> float | None:
        """Seconds the running commit has gone without progress; None if none is running."""
        return self._timing.idle_s()

    def commit(self, batch: SealedBatch) -> CommitOutcome:
        """Append the batch's rows not yet in the table, with the merged offsets, in one commit.

        Raises CommitConflictError after `max_attempts` lost races, and lets any other failure
        (catalog or storage down) through; either way nothing of the batch was committed by
        this call, or, if the outcome is unknown, the next attempt finds out from the offsets.
        """
        with self._lock, self._timing.measure() as breakdown:
            outcome = self._commit(batch)
        return dataclasses.replace(outcome, breakdown=breakdown())

    def _commit(self, batch: SealedBatch) -> CommitOutcome:
        started = self._clock()
        arrow_began = self._timing.clock()
        data = batch.to_table()
        self._timing.span("arrow", arrow_began, self._timing.clock())
        for attempt in range(1, self._max_attempts + 1):
            try:
                if self._stale:
                    self._table.refresh()
                    self._stale = False
                found = stored_offsets(self._table.metadata, self.topic)
                stored = found.partitions if found is not None else {}
                landed = drop_landed(data, batch.first_offsets, stored)
                rows = self._ids.new_rows(self._table, landed, self._timing.progressed)
                merged = merge_offsets(stored, batch.next_offsets)
                if merged == stored:
                    return CommitOutcome(
                        committed=False,
                        rows=0,
                        skipped_rows=len(data),
                        offsets=merged,
                        snapshot_id=found.snapshot_id if found is not None else None,
                        attempts=attempt,
                        seconds=self._clock() - started,
                    )
                properties = {OFFSETS_PROPERTY: encode_offsets(self.topic, self.group, merged)}
                expired = self._expirable()
                with self._table.transaction() as transaction:
                    transaction.append(rows, snapshot_properties=properties)
                    if expired:
                        ExpireSnapshots(transaction).by_ids(expired).commit()
            except CommitFailedException as exc:
                self._stale = True
                log.warning(
                    "Iceberg commit conflict (attempt %d of %d), reloading the table: %s",
                    attempt,
                    self._max_attempts,
                    exc,
                )
                self._sleep(min(1.0, 0.05 * 2**attempt))
                continue
            except BaseException:
                self._stale = True
                raise
            self._ids.committed(rows, self._table)
            snapshot = self._table.metadata.current_snapshot()
            if expired:
                log.info("expired %d old snapshots with this commit", len(expired))
            return CommitOutcome(
                committed=True,
                rows=len(rows),
                skipped_rows=len(data) - len(landed),
                offsets=merged,
                snapshot_id=snapshot.snapshot_id if snapshot is not None else None,
                attempts=attempt,
                seconds=self._clock() - started,
                replayed_rows=len(landed) - len(rows),
            )
        raise CommitConflictError(
            f"gave up committing a batch of {batch.size} records after {self._max_attempts} "
            "conflicting attempts"
        )

    def _expirable(self) -> list[int]:
        """Snapshots to expire with the next append (it adds one), oldest first; often none.

        The newest snapshot, which carries the cumulative offsets, is never among them, nor
        any branch or tag head.
        """
        metadata = self._table.metadata
        if len(metadata.snapshots) + 1 <= self._keep_snapshots + EXPIRE_SLACK:
            return []
        protected = {ref.snapshot_id for ref in metadata.refs.values()}
        snapshots = sorted(
            metadata.snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms)
        )
        return [
            s.snapshot_id
            for s in snapshots[: -(self._keep_snapshots - 1) or None]
            if s.snapshot_id not in protected
        ]
