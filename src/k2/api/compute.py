"""The Arrow work behind every endpoint, shared by the Iceberg and the in-memory repository.

One implementation of ordering, paging and the day summary, so the unit tests (in-memory)
exercise the exact code production runs after its Iceberg scan.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from itertools import accumulate
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from k2.api.query import PageRequest, TradeFilter
from k2.api.repository import DaySummary
from k2.model.decimals import QUANTUM
from k2.model.schema import trade_v2_field_names

TRADE_COLUMNS: Final = trade_v2_field_names()
"""The TradeV2 fields, in Avro order: what a scan projects and what the API returns.

The table's lineage columns (kafka_partition, kafka_offset) are left unread.
"""

SUMMARY_COLUMNS: Final = ("message_id", "timestamp", "price", "quantity")
STATS_COLUMNS: Final = ("symbol", "timestamp")

NEWEST_FIRST: Final = [("timestamp", "descending"), ("message_id", "descending")]
"""Newest first; message_id breaks ties, so equal timestamps page deterministically."""
OLDEST_FIRST: Final = [("timestamp", "ascending"), ("message_id", "ascending")]

_MAX_CANDIDATES: Final = 4
"""Rows sorted per row wanted before `_newest` sorts every key instead."""

# Wide enough that price * quantity, summed over any realistic day, cannot overflow.
_NOTIONAL_TYPE: Final = pa.decimal256(30, 8)


def _equals(column: pa.ChunkedArray, value: str) -> pa.ChunkedArray:
    """Whether column == value; on dictionary chunks, compared by index (no string decoding)."""
    if not pa.types.is_dictionary(column.type):
        return pc.equal(column, pa.scalar(value, column.type))
    masks = []
    for chunk in column.chunks:
        position = pc.index(chunk.dictionary, value).as_py()
        # No index is ever -1, so an absent value yields an all-false mask.
        masks.append(pc.equal(chunk.indices, position))
    return pa.chunked_array(masks, pa.bool_())


def match_mask(rows: pa.Table, where: TradeFilter) -> pa.ChunkedArray | None:
    """A boolean column, true where `where` holds; None when it selects every row."""
    terms: list[pa.ChunkedArray] = []
    if where.symbol is not None:
        terms.append(_equals(rows.column("symbol"), where.symbol))
    if where.exchange is not None:
        terms.append(_equals(rows.column("exchange"), where.exchange))
    if where.start is not None:
        timestamps = rows.column("timestamp")
        terms.append(pc.greater_equal(timestamps, pa.scalar(where.start, timestamps.type)))
    if where.end is not None:
        timestamps = rows.column("timestamp")
        terms.append(pc.less_equal(timestamps, pa.scalar(where.end, timestamps.type)))
    if not terms:
        return None
    mask = terms[0]
    for term in terms[1:]:
        mask = pc.and_(mask, term)
    return mask


def select_matching(rows: pa.Table, where: TradeFilter, columns: Sequence[str]) -> pa.Table:
    """`columns` of the rows `where` selects (the filter may use other columns of `rows`)."""
    mask = match_mask(rows, where)
    selected = rows.select(list(columns))
    return selected if mask is None else selected.filter(mask)


def _newest(keys: pa.Table, wanted: int) -> pa.Array:
    """Indices of the `wanted` newest of `keys`, newest first, equal keys in row order.

    Equal keys (a trade stored twice) must come out in one fixed order, the same for every
    page, or paging would show one copy twice and skip the other: so every ranking here is
    Arrow's stable sort, never select_k_unstable. The last `wanted` rows bound the answer: no
    row older than the oldest of them can be among the `wanted` newest, and rows are stored
    oldest first, so usually only a few rows are sorted (measured: 1.7 ms for 600k rows, where
    select_k took 118 ms). Nulls, or rows so out of order that the bound admits many, sort
    all the keys instead.
    """
    timestamps = keys.column("timestamp")
    if timestamps.null_count == 0 and keys.column("message_id").null_count == 0:
        newer = pc.greater_equal(timestamps, pc.min(timestamps.slice(keys.num_rows - wanted)))
        candidates = pc.indices_nonzero(newer)
        if len(candidates) <= _MAX_CANDIDATES * wanted:
            # The candidates keep row order, so a stable sort of them ranks ties as below.
            order = pc.sort_indices(keys.filter(newer), sort_keys=NEWEST_FIRST)
            return candidates.take(order.slice(0, wanted))
    return pc.sort_indices(keys, sort_keys=NEWEST_FIRST).slice(0, wanted)


def newest_first_positions(
    rows: pa.Table, page: PageRequest, where: TradeFilter | None = None
) -> tuple[pa.Array, int]:
    """Row numbers (in `rows`) of matches `offset` to `offset + limit` in NEWEST_FIRST order.

    Also returns the number of matches. Only the key columns of the matches are ranked, and
    only the newest of them when the page ends before the last match (see `_newest`).
    """
    mask = None if where is None else match_mask(rows, where)
    keys = rows.select(["timestamp", "message_id"])
    positions = None
    if mask is not None:
        positions = pc.indices_nonzero(mask)
        keys = keys.take(positions)
    total = keys.num_rows
    if page.offset >= total:
        return pa.array([], pa.uint64()), total
    wanted = page.offset + page.limit
    if wanted < total:
        order = _newest(keys, wanted)
    else:
        order = pc.sort_indices(keys, sort_keys=NEWEST_FIRST)
    order = order.slice(page.offset, page.limit)
    if positions is not None:
        order = positions.take(order)
    return order, total


def take_rows(
    batches: Sequence[pa.RecordBatch], schema: pa.Schema, positions: pa.Array
) -> pa.Table:
    """The rows at `positions` (row numbers counted across `batches`), in that order.

    Why not `Table.take`: on a table of many chunks (the replica keeps up to 64) it first
    concatenates every column, so a 1000-row page cost a copy of the whole table (measured:
    ~30 ms of CPU at 600k rows). Taking from each batch touches only the rows taken.
    """
    if len(batches) == 1:
        return pa.Table.from_batches([batches[0].take(positions)], schema)
    ends = list(accumulate(batch.num_rows for batch in batches))
    wanted: dict[int, list[int]] = {}
    slots: list[tuple[int, int]] = []
    for position in positions.to_pylist():
        batch = bisect_right(ends, position)
        local = wanted.setdefault(batch, [])
        slots.append((batch, len(local)))
        local.append(position - (ends[batch - 1] if batch else 0))
    first: dict[int, int] = {}
    pieces = []
    taken_so_far = 0
    for batch in sorted(wanted):
        first[batch] = taken_so_far
        taken_so_far += len(wanted[batch])
        pieces.append(batches[batch].take(pa.array(wanted[batch], pa.int64())))
    taken = pa.Table.from_batches(pieces, schema)
    # The page's few rows, put back in page order: this concatenation is of them only.
    return taken.take(pa.array([first[batch] + rank for batch, rank in slots], pa.int64()))


def newest_first_page(
    rows: pa.Table, page: PageRequest, where: TradeFilter | None = None
) -> tuple[pa.Table, int]:
    """Rows `offset` to `offset + limit` of the matches in NEWEST_FIRST order, and the count.

    Only the page's rows are taken from the wide table (see `take_rows`).
    """
    order, total = newest_first_positions(rows, page, where)
    if len(order) == 0:
        return rows.slice(0, 0), total
    return take_rows(rows.to_batches(), rows.schema, order), total


def _extreme(rows: pa.Table, sort_keys: list[tuple[str, str]]) -> int:
    index = pc.select_k_unstable(rows.select(["timestamp", "message_id"]), 1, sort_keys)
    return int(index[0].as_py())


def day_summary(rows: pa.Table, symbol: str, day: date) -> DaySummary | None:
    """OHLCV of `rows` (one symbol's trades of one UTC day), or None if there are none.

    Open and close are the prices of the first and last trade by (timestamp, message_id);
    volume is the exact sum of quantities; vwap is sum(price * quantity) / volume, rounded
    half-even to 8 places (None when the volume is zero).
    """
    if rows.num_rows == 0:
        return None
    prices = rows.column("price")
    quantities = rows.column("quantity")
    first = _extreme(rows, OLDEST_FIRST)
    last = _extreme(rows, NEWEST_FIRST)
    low_high = pc.min_max(prices)
    volume: Decimal = pc.sum(quantities).as_py()
    notional: Decimal = pc.sum(
        pc.multiply(prices.cast(_NOTIONAL_TYPE), quantities.cast(_NOTIONAL_TYPE))
    ).as_py()
    vwap = None
    if volume:
        with localcontext() as context:
            context.prec = 90
            vwap = (notional / volume).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)
    timestamps = rows.column("timestamp")
    return DaySummary(
        symbol=symbol,
        day=day,
        open=prices[first].as_py(),
        high=low_high["max"].as_py(),
        low=low_high["min"].as_py(),
        close=prices[last].as_py(),
        volume=volume.quantize(QUANTUM),
        vwap=vwap,
        trade_count=rows.num_rows,
        first_trade=timestamps[first].as_py(),
        last_trade=timestamps[last].as_py(),
    )


def distinct_symbols(rows: pa.Table) -> list[str]:
    """The distinct values of the symbol column, sorted."""
    return sorted(pc.unique(rows.column("symbol")).to_pylist())


def latest_timestamp(rows: pa.Table) -> datetime | None:
    """The newest trade time in `rows`, or None when empty."""
    if rows.num_rows == 0:
        return None
    latest: datetime | None = pc.max(rows.column("timestamp")).as_py()
    return latest
