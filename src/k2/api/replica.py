"""An in-memory copy of the trades table, kept current by reading only what each commit added.

Why: the consumer commits small batches every second or so, and each commit adds a manifest
and a few small data files. A scan per request must open every one of them (measured: over
2 s of planning and 4 s of reading for one symbol after 650 commits on a local disk), so no
amount of pushdown meets a 100 ms budget. The copy instead follows the snapshot lineage: a
request still loads the table metadata through the catalog (so every commit is visible at
once), and when the snapshot moved on by appends only, pyiceberg's incremental append scan
reads just the new files. Compaction (`replace` snapshots) changes no rows, so it costs
nothing here; any other operation (overwrite, delete), a lineage the copy cannot follow
(rollback, expired snapshots, a re-created table) or a schema change reloads in full.

The copy holds the TradeV2 columns only, with the repetitive short strings dictionary-encoded
(about 3x less memory for them), and a `SymbolIndex` kept up to date with it the same way
(only new rows are grouped), so a symbol query reads that symbol's rows only. Past `max_rows`
both are dropped and the repository falls back to pushdown scans, so memory stays bounded
whatever the table grows to.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot

from k2.api.compute import TRADE_COLUMNS
from k2.api.symbol_index import SymbolIndex

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS: Final = 1_000_000
"""About 230 MB of Arrow at the ~230 bytes a trade row measured (vendor_data included)."""
_ENCODED: Final = ("symbol", "exchange", "asset_class", "currency", "side")
_ROW_PRESERVING: Final = frozenset({Operation.APPEND, Operation.REPLACE})
_MAX_CHUNKS: Final = 64


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """The table's TradeV2 rows as of one snapshot and their index (immutable: share freely)."""

    table_uuid: str
    snapshot_id: int | None
    sequence_number: int
    rows: pa.Table
    index: SymbolIndex


def _compact(rows: pa.Table) -> pa.Table:
    for name in _ENCODED:
        column = rows.column(name)
        if not pa.types.is_dictionary(column.type):
            index = rows.schema.get_field_index(name)
            rows = rows.set_column(index, name, pc.dictionary_encode(column))
    return rows


def _total_records(snapshot: Snapshot | None) -> int:
    """The snapshot summary's row count (0 when unknown: the load then measures it)."""
    if snapshot is None or snapshot.summary is None:
        return 0
    # Summary.__getitem__ answers None for an absent key (so .get ignores its default).
    value = snapshot.summary["total-records"]
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _appended_since(table: Table, since: int, current: Snapshot) -> list[Snapshot] | None:
    """The snapshots after `since` up to `current`, newest first; None if not a descendant."""
    chain: list[Snapshot] = []
    snapshot: Snapshot | None = current
    while snapshot is not None:
        if snapshot.snapshot_id == since:
            return chain
        chain.append(snapshot)
        parent = snapshot.parent_snapshot_id
        if parent == since:
            return chain
        if parent is None:
            return None
        snapshot = table.metadata.snapshot_by_id(parent)
    return None


class TradeReplica:
    """The in-memory copy; `view(table)` brings it to `table`'s snapshot and returns it.

    Thread-safe: refreshes are serialised, readers get an immutable view.
    """

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._view: ReplicaView | None = None
        self._off_reason: str | None = None if max_rows > 0 else "disabled (max_rows 0)"
        self.full_loads = 0
        self.incremental_loads = 0

    @property
    def latest(self) -> ReplicaView | None:
        """The view as last refreshed (None before the first refresh or when off)."""
        return self._view

    @property
    def filling(self) -> bool:
        """True while the first copy is being read (requests would wait for it)."""
        return self._view is None and self._lock.locked()

    @property
    def off_reason(self) -> str | None:
        """Why the replica is not used (None while it is)."""
        return self._off_reason

    def view(self, table: Table) -> ReplicaView | None:
        """The rows as of `table`'s current snapshot or a later one; None when off.

        The replica turns itself off for good once the table outgrows `max_rows`: an
        append-only table does not shrink, so trying again would only cost full reloads.
        """
        if self._off_reason is not None:
            return None
        snapshot = table.current_snapshot()
        # Most requests find the view current: answer without waiting for a refresh (an
        # incremental read from S3) that the follower may be holding the lock for.
        current = self._view
        if (
            current is not None
            and current.table_uuid == str(table.metadata.table_uuid)
            and current.snapshot_id == (snapshot.snapshot_id if snapshot else None)
        ):
            return current
        with self._lock:
            if self._off_reason is not None:
                return None
            current = self._view
            if current is not None and current.table_uuid != str(table.metadata.table_uuid):
                current = None  # the table was dropped and created again: nothing carries over
            if current is not None:
                if current.snapshot_id == (snapshot.snapshot_id if snapshot else None):
                    return current
                # Another request already refreshed past the metadata this one loaded: its
                # snapshot is newer and unknown here (a rolled-back one would be known).
                if (
                    snapshot is not None
                    and current.snapshot_id is not None
                    and current.sequence_number > (snapshot.sequence_number or 0)
                    and table.metadata.snapshot_by_id(current.snapshot_id) is None
                ):
                    return current
            self._view = self._refreshed(table, snapshot, current)
            return self._view

    def _refreshed(
        self, table: Table, snapshot: Snapshot | None, current: ReplicaView | None
    ) -> ReplicaView | None:
        table_uuid = str(table.metadata.table_uuid)
        snapshot_id = snapshot.snapshot_id if snapshot is not None else None
        grown = None
        if current is not None and current.snapshot_id is not None and snapshot is not None:
            grown = self._incremental(table, current, snapshot)
        index: SymbolIndex | None = None
        if grown is None:
            if _total_records(snapshot) > self._max_rows:
                self._turn_off(_total_records(snapshot))
                return None
            rows = self._full(table)
        else:
            rows, index = grown
        if rows.num_rows > self._max_rows:
            self._turn_off(rows.num_rows)
            return None
        if rows.column(0).num_chunks > _MAX_CHUNKS:
            rows = rows.combine_chunks()
            index = None  # one batch now: grouping it afresh is cheaper than merging
        if index is None:
            index = SymbolIndex.of(rows)
        return ReplicaView(
            table_uuid=table_uuid,
            snapshot_id=snapshot_id,
            sequence_number=(snapshot.sequence_number or 0) if snapshot is not None else 0,
            rows=rows,
            index=index,
        )

    def _turn_off(self, rows: int) -> None:
        self._off_reason = f"{rows} rows exceed max_rows {self._max_rows}"
        self._view = None
        log.warning("trade replica off for good (%s): serving by pushdown scans", self._off_reason)

    def _incremental(
        self, table: Table, current: ReplicaView, snapshot: Snapshot
    ) -> tuple[pa.Table, SymbolIndex] | None:
        """The rows and index grown by what the appends since `current` added; None: reload."""
        assert current.snapshot_id is not None
        chain = _appended_since(table, current.snapshot_id, snapshot)
        if chain is None:
            log.info(
                "snapshot %s does not descend from %s: full reload",
                snapshot.snapshot_id,
                current.snapshot_id,
            )
            return None
        operations = {s.summary.operation if s.summary else None for s in chain}
        if not operations <= _ROW_PRESERVING:
            log.info(
                "snapshots since %s include %s: full reload",
                current.snapshot_id,
                sorted(str(op) for op in operations),
            )
            return None
        if Operation.APPEND not in operations:
            return current.rows, current.index
        added = (
            table.incremental_append_scan(
                from_snapshot_id_exclusive=current.snapshot_id,
                to_snapshot_id_inclusive=snapshot.snapshot_id,
                selected_fields=TRADE_COLUMNS,
            )
            .to_arrow()
            .select(list(TRADE_COLUMNS))
        )
        self.incremental_loads += 1
        if added.num_rows == 0:
            return current.rows, current.index
        try:
            rows = pa.concat_tables([current.rows, _compact(added)], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            log.info("new rows do not fit the replica (%s): full reload", exc)
            return None
        return rows, current.index.appended(rows)

    def _full(self, table: Table) -> pa.Table:
        self.full_loads += 1
        rows = table.scan(selected_fields=TRADE_COLUMNS).to_arrow()
        # One chunk per data file otherwise; per-chunk work would then cost per file.
        return _compact(rows.select(list(TRADE_COLUMNS)).combine_chunks())
