"""The fast paths of /v1/trades answer exactly what the plain ones did.

Covered: the symbol index (incremental growth, regrouping, lookups), the page through it
against the unindexed page, the newest-first ranking and the batch-wise take against the
code they replaced, and the column-wise JSON against `json.dumps` of `trade_records`.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from k2.api import compute
from k2.api.memory import TRADES_ARROW_SCHEMA
from k2.api.query import PageRequest, TradeFilter
from k2.api.replica import _compact
from k2.api.symbol_index import SymbolIndex, symbol_page

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


def random_rows(rng: random.Random, count: int, symbols: tuple[str, ...] = SYMBOLS) -> pa.Table:
    """Trades with many equal timestamps, some repeated keys and rows out of time order."""
    records: list[dict[str, Any]] = []
    for n in range(count):
        second = n // 3 + (rng.randrange(-20, 3) if rng.random() < 0.2 else 0)
        message = f"m{rng.randrange(count)}" if rng.random() < 0.1 else f"id-{n:06d}"
        records.append(
            {
                "message_id": message,
                "trade_id": f"BINANCE-{n}",
                "symbol": rng.choice(symbols),
                "exchange": rng.choice(("BINANCE", "KRAKEN")),
                "asset_class": "crypto",
                "timestamp": T0 + timedelta(seconds=max(0, second)),
                "price": Decimal(rng.randrange(1, 10**12)) / 10**8,
                "quantity": Decimal("0.001"),
                "currency": "USDT",
                "side": rng.choice(("BUY", "SELL")),
                "trade_conditions": [],
                "source_sequence": n,
                "ingestion_timestamp": T0 + timedelta(microseconds=n),
                "platform_sequence": None,
                "vendor_data": [("t", str(n))],
            }
        )
    return pa.Table.from_pylist(records, schema=TRADES_ARROW_SCHEMA)


def in_parts(rows: pa.Table, sizes: list[int]) -> tuple[pa.Table, SymbolIndex]:
    """`rows` loaded as the replica loads them: a first part in full, then appends."""
    part = _compact(rows.slice(0, sizes[0]))
    table, index = part, SymbolIndex.of(part)
    start = sizes[0]
    for size in sizes[1:]:
        table = pa.concat_tables([table, _compact(rows.slice(start, size))])
        index = index.appended(table)
        start += size
    return table, index


def newest_first_by_python(timestamps: list[Any], message_ids: list[Any]) -> list[int]:
    """Row numbers, newest first, message_id descending, nulls last, ties in row order.

    Python's sorts are stable, also with reverse=True: by message_id first, then timestamp.
    """
    rows = range(len(timestamps))
    by_id = sorted(
        (r for r in rows if message_ids[r] is not None), key=message_ids.__getitem__, reverse=True
    )
    by_id += [r for r in rows if message_ids[r] is None]
    return sorted(by_id, key=timestamps.__getitem__, reverse=True)


def reference_page(rows: pa.Table, page: PageRequest, where: TradeFilter) -> tuple[list[Any], int]:
    """The page by its definition, in plain Python: filter, rank newest first, slice."""
    records = rows.to_pylist()
    matches = [
        r
        for r in records
        if (where.symbol is None or r["symbol"] == where.symbol)
        and (where.exchange is None or r["exchange"] == where.exchange)
        and (where.start is None or r["timestamp"] >= where.start)
        and (where.end is None or r["timestamp"] <= where.end)
    ]
    order = newest_first_by_python(
        [r["timestamp"] for r in matches], [r["message_id"] for r in matches]
    )
    return [matches[n] for n in order][page.offset : page.offset + page.limit], len(matches)


def random_query(rng: random.Random, symbols: tuple[str, ...]) -> tuple[TradeFilter, PageRequest]:
    start = T0 + timedelta(seconds=rng.randrange(0, 40)) if rng.random() < 0.4 else None
    end = T0 + timedelta(seconds=rng.randrange(40, 120)) if rng.random() < 0.4 else None
    where = TradeFilter(
        symbol=rng.choice((*symbols, "DOGEUSDT")),
        exchange=rng.choice((None, None, "BINANCE", "KRAKEN", "NOPE")),
        start=start,
        end=end,
    )
    page = PageRequest(rng.choice((1, 2, 7, 50, 1000)), rng.choice((0, 0, 1, 13, 60, 500)))
    return where, page


# -- the index ------------------------------------------------------------------------------


def test_appending_groups_only_the_new_rows() -> None:
    rows = random_rows(random.Random(1), 300)
    first = _compact(rows.slice(0, 200))
    index = SymbolIndex.of(first)
    grown = index.appended(pa.concat_tables([first, _compact(rows.slice(200))]))
    assert grown.num_rows == 300
    assert grown.batches[: len(index.batches)] == index.batches
    assert all(a is b for a, b in zip(grown.rows_of, index.rows_of, strict=False))
    assert len(grown.rows_of) == len(index.rows_of) + 1


def test_index_finds_every_row_of_a_symbol_in_row_order() -> None:
    rows = random_rows(random.Random(2), 500)
    _, index = in_parts(rows, [100, 1, 0, 150, 249])
    for symbol in (*SYMBOLS, "DOGEUSDT"):
        gathered, positions = index.gather(symbol, ["trade_id"])
        expected = pc.indices_nonzero(pc.equal(rows.column("symbol"), symbol))
        assert positions.to_pylist() == expected.to_pylist()
        assert gathered.column("trade_id").to_pylist() == (
            rows.column("trade_id").take(expected).to_pylist()
        )
        assert gathered.column("trade_id").num_chunks <= 1


def test_index_matches_what_the_filter_matches() -> None:
    # Null symbols match nothing; a value twice in a dictionary matches at its first code
    # only, as compute._equals compares codes; plain strings work too.
    dictionary = pa.array(["BTCUSDT", "ETHUSDT", "BTCUSDT"], pa.large_string())
    codes = pa.array([0, 2, None, 1, 0], pa.int32())
    encoded = pa.DictionaryArray.from_arrays(codes, dictionary)
    plain = pa.array(["BTCUSDT", None, "ETHUSDT", "BTCUSDT", "SOL"], pa.string())
    for column in (encoded, plain):
        rows = pa.table({"symbol": column, "n": pa.array(range(5))})
        index = SymbolIndex.of(rows)
        for symbol in ("BTCUSDT", "ETHUSDT", "SOL", "XRP"):
            mask = compute.match_mask(rows, TradeFilter(symbol=symbol))
            assert mask is not None
            expected = pc.indices_nonzero(mask).to_pylist()
            assert index.gather(symbol, ["n"])[1].to_pylist() == expected


def test_a_changed_schema_regroups_everything() -> None:
    rows = pa.table({"symbol": ["A", "B"], "n": pa.array([1, 2], pa.int32())})
    index = SymbolIndex.of(rows)
    wider = pa.table({"symbol": ["A", "B", "A"], "n": pa.array([1, 2, 3], pa.int64())})
    grown = index.appended(wider)
    assert grown.schema == wider.schema
    assert grown.gather("A", ["n"])[0].column("n").to_pylist() == [1, 3]


def test_empty_index() -> None:
    index = SymbolIndex.of(TRADES_ARROW_SCHEMA.empty_table())
    assert index.num_rows == 0
    rows, total = symbol_page(index, PageRequest(10, 0), TradeFilter(symbol="BTCUSDT"))
    assert (rows.num_rows, total) == (0, 0)
    with pytest.raises(ValueError, match="symbol"):
        symbol_page(index, PageRequest(10, 0), TradeFilter())


@pytest.mark.parametrize("seed", range(6))
def test_symbol_page_is_the_unindexed_page(seed: int) -> None:
    rng = random.Random(seed)
    rows = random_rows(rng, 700)
    table, index = in_parts(rows, [rng.randrange(1, 300), 0, 5, *([40] * 10)])
    assert table.num_rows == index.num_rows
    combined = table.combine_chunks()
    for _ in range(40):
        where, page = random_query(rng, SYMBOLS)
        expected = reference_page(table, page, where)
        for ix in (index, SymbolIndex.of(combined)):
            got, total = symbol_page(ix, page, where)
            assert (got.to_pylist(), total) == expected, (where, page)
        got, total = compute.newest_first_page(table, page, where)
        assert (got.to_pylist(), total) == expected


# -- ranking and taking ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_unfiltered_pages_are_the_old_pages(seed: int) -> None:
    rng = random.Random(seed)
    table, _ = in_parts(random_rows(rng, 500), [100, *([50] * 8)])
    for where in (TradeFilter(), TradeFilter(exchange="KRAKEN")):
        for limit, offset in ((1, 0), (10, 0), (100, 37), (450, 0), (10, 495), (5, 600)):
            page = PageRequest(limit, offset)
            got, total = compute.newest_first_page(table, page, where)
            assert (got.to_pylist(), total) == reference_page(table, page, where)


def test_ranking_falls_back_on_null_and_scrambled_keys() -> None:
    rng = random.Random(7)
    timestamps = [T0 + timedelta(seconds=rng.randrange(50)) for _ in range(300)]
    messages = [None if n % 17 == 0 else f"id-{rng.randrange(100)}" for n in range(300)]
    for column in (messages, [m or "x" for m in messages]):
        keys = pa.table(
            {"timestamp": pa.array(timestamps, pa.timestamp("us", "UTC")), "message_id": column}
        )
        for wanted in (1, 5, 60, 299):
            order, total = compute.newest_first_positions(keys, PageRequest(wanted, 0))
            expected = newest_first_by_python(timestamps, column)[:wanted]
            assert (order.to_pylist(), total) == (expected, 300)


def test_take_rows_is_table_take() -> None:
    rng = random.Random(3)
    table, _ = in_parts(random_rows(rng, 200), [50, 0, 70, 80])
    batches = table.to_batches()
    for positions in ([], [0], [199, 0, 120, 50, 50, 49], rng.sample(range(200), 150)):
        indices = pa.array(positions, pa.uint64())
        got = compute.take_rows(batches, table.schema, indices)
        assert got.to_pylist() == table.take(indices).to_pylist()


def test_paging_over_a_trade_stored_many_times_shows_each_copy_once() -> None:
    keys = pa.table(
        {
            "timestamp": pa.array([T0] * 40, pa.timestamp("us", "UTC")),
            "message_id": ["same"] * 40,
        }
    )
    seen: list[int] = []
    for offset in range(0, 40, 7):
        order, total = compute.newest_first_positions(keys, PageRequest(7, offset))
        assert total == 40
        seen += order.to_pylist()
    assert sorted(seen) == list(range(40))
