"""The Arrow work shared by both repositories, the pyiceberg filter, and the JSON formats."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    LessThanOrEqual,
)
from pyiceberg.expressions.visitors import inclusive_projection
from pyiceberg.transforms import DayTransform

from k2.api import compute
from k2.api.filters import iceberg_row_filter
from k2.api.memory import trades_table
from k2.api.query import PageRequest, TradeFilter
from k2.api.serialize import format_instant, format_price, trade_records
from k2.iceberg.table import TRADES_PARTITION_SPEC, TRADES_SCHEMA
from k2.model.trade import Trade
from tests.unit import trades

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_trade(n: int, symbol: str = "BTCUSDT", seconds: int | None = None, **kw: str) -> Trade:
    return trades.make_trade(
        n,
        symbol=symbol,
        timestamp=T0 + timedelta(seconds=n if seconds is None else seconds),
        price=kw.get("price", "1"),
        quantity=kw.get("quantity", "1"),
    )


def pred(kind: Callable[..., BooleanExpression], column: str, value: object) -> BooleanExpression:
    # pyiceberg predicates take (term, literal) at run time; mypy sees pydantic's signature.
    return kind(column, value)


def ids(rows: pa.Table) -> list[str]:
    values: list[str] = rows.column("trade_id").to_pylist()
    return values


# -- pyiceberg filter ---------------------------------------------------------------------


def test_empty_filter_is_always_true() -> None:
    assert iceberg_row_filter(TradeFilter()) == AlwaysTrue()


def test_single_term_is_not_wrapped() -> None:
    assert iceberg_row_filter(TradeFilter(symbol="BTCUSDT")) == pred(EqualTo, "symbol", "BTCUSDT")


def test_full_filter_expression() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)
    expression = iceberg_row_filter(
        TradeFilter(symbol="BTCUSDT", exchange="BINANCE", start=start, end=end)
    )
    assert expression == And(
        And(pred(EqualTo, "symbol", "BTCUSDT"), pred(EqualTo, "exchange", "BINANCE")),
        And(
            pred(GreaterThanOrEqual, "timestamp", 1_767_225_600_000_000),
            pred(LessThanOrEqual, "timestamp", 1_767_311_999_999_999),
        ),
    )


def test_filter_prunes_partitions_by_day() -> None:
    where = TradeFilter(
        symbol="BTCUSDT",
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 2, 12, tzinfo=UTC),
    )
    projected = inclusive_projection(TRADES_SCHEMA, TRADES_PARTITION_SPEC)(
        iceberg_row_filter(where)
    )
    day = cast(Callable[[Any], int], DayTransform().transform(TRADES_SCHEMA.find_type("timestamp")))
    text = repr(projected)
    assert f"timestamp_day'), literal=LongLiteral({day(1_767_225_600_000_000)})" in text
    assert f"timestamp_day'), literal=LongLiteral({day(1_767_355_200_000_000)})" in text


# -- ordering, paging, filtering ----------------------------------------------------------


def test_page_is_newest_first_with_message_id_breaking_ties() -> None:
    trades = [make_trade(n, seconds=n // 3) for n in range(9)]
    rows = trades_table(trades)
    page, total = compute.newest_first_page(rows, PageRequest(9, 0))
    expected = sorted(trades, key=lambda t: (t.timestamp, t.message_id), reverse=True)
    assert ids(page) == [t.trade_id for t in expected]
    assert total == 9


@pytest.mark.parametrize(("limit", "offset"), [(1, 0), (3, 2), (5, 5), (10, 0), (4, 8), (2, 20)])
def test_partial_top_k_and_full_sort_agree(limit: int, offset: int) -> None:
    trades = [make_trade(n, seconds=(n * 7) % 5) for n in range(10)]
    rows = trades_table(trades)
    full, _ = compute.newest_first_page(rows, PageRequest(10, 0))
    page, total = compute.newest_first_page(rows, PageRequest(limit, offset))
    assert ids(page) == ids(full)[offset : offset + limit]
    assert total == 10


def test_page_of_matches_takes_rows_from_the_wide_table() -> None:
    trades = [make_trade(n, symbol="ETHUSDT" if n % 2 else "BTCUSDT") for n in range(10)]
    rows = trades_table(trades)
    page, total = compute.newest_first_page(rows, PageRequest(2, 1), TradeFilter(symbol="ETHUSDT"))
    assert total == 5
    assert ids(page) == ["BINANCE-7", "BINANCE-5"]
    assert page.column_names == rows.column_names


def test_dictionary_columns_filter_like_plain_ones() -> None:
    trades = [make_trade(n, symbol=s) for n, s in enumerate(["BTCUSDT", "ETHUSDT"] * 3)]
    plain = trades_table(trades)
    encoded = plain.set_column(
        plain.schema.get_field_index("symbol"),
        "symbol",
        pa.chunked_array(
            [pc.dictionary_encode(chunk) for chunk in plain.column("symbol").slice(0, 4).chunks]
            + [pc.dictionary_encode(chunk) for chunk in plain.column("symbol").slice(4).chunks]
        ),
    )
    for symbol in ("ETHUSDT", "SOLUSDT"):
        where = TradeFilter(symbol=symbol)
        assert compute.match_mask(encoded, where) == compute.match_mask(plain, where)
    assert compute.distinct_symbols(encoded) == ["BTCUSDT", "ETHUSDT"]


def test_select_matching_filters_on_columns_it_does_not_return() -> None:
    rows = trades_table([make_trade(1), make_trade(2, symbol="ETHUSDT")])
    matching = compute.select_matching(rows, TradeFilter(symbol="ETHUSDT"), ["price"])
    assert matching.column_names == ["price"]
    assert matching.num_rows == 1


def test_summary_of_nothing_is_none() -> None:
    assert compute.day_summary(trades_table([]), "BTCUSDT", date(2026, 1, 1)) is None


def test_summary_open_close_follow_time_and_message_id() -> None:
    same_second = [make_trade(n, seconds=0, price=str(n + 1)) for n in range(3)]
    summary = compute.day_summary(trades_table(same_second), "BTCUSDT", date(2026, 1, 1))
    assert summary is not None
    by_id = sorted(same_second, key=lambda t: t.message_id)
    assert summary.open == by_id[0].price
    assert summary.close == by_id[-1].price


def test_summary_volume_is_exact_and_vwap_none_without_volume() -> None:
    trades = [make_trade(1, quantity="0.00000001"), make_trade(2, quantity="0.00000002")]
    summary = compute.day_summary(trades_table(trades), "BTCUSDT", date(2026, 1, 1))
    assert summary is not None
    assert summary.volume == Decimal("0.00000003")
    zero = compute.day_summary(
        trades_table([make_trade(1, quantity="0")]), "BTCUSDT", date(2026, 1, 1)
    )
    assert zero is not None
    assert zero.vwap is None


def test_summary_does_not_overflow_at_the_largest_values() -> None:
    trades = [
        make_trade(n, price="9999999999.99999999", quantity="9999999999.99999999")
        for n in range(100)
    ]
    summary = compute.day_summary(trades_table(trades), "BTCUSDT", date(2026, 1, 1))
    assert summary is not None
    assert summary.vwap == Decimal("9999999999.99999999")
    assert summary.volume == Decimal("999999999999.99999900")


# -- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0", "0.00000000"),
        ("0.00000001", "0.00000001"),
        ("0.1", "0.10000000"),
        ("43251.12345678", "43251.12345678"),
        ("9999999999.99999999", "9999999999.99999999"),
        ("-1.5", "-1.50000000"),
        ("-0.00000001", "-0.00000001"),
    ],
)
def test_decimals_render_with_exactly_eight_places(value: str, text: str) -> None:
    column = pa.chunked_array([pa.array([Decimal(value)], pa.decimal128(18, 8))])
    rows = trades_table([make_trade(1)]).set_column(6, "price", column)
    assert trade_records(rows)[0]["price"] == text
    assert format_price(Decimal(value)) == text


def test_timestamps_render_as_utc_microseconds_with_z() -> None:
    trades = [
        Trade.new(
            **{**_fields(), "timestamp": T0 + timedelta(microseconds=micros)},  # type: ignore[arg-type]
        )
        for micros in (0, 1, 999_999, 86_400_000_000 - 1)
    ]
    texts = [r["timestamp"] for r in trade_records(trades_table(trades))]
    assert texts == [
        "2026-01-01T00:00:00.000000Z",
        "2026-01-01T00:00:00.000001Z",
        "2026-01-01T00:00:00.999999Z",
        "2026-01-01T23:59:59.999999Z",
    ]
    assert format_instant(datetime(2026, 1, 1, 1, tzinfo=UTC)) == "2026-01-01T01:00:00.000000Z"


def test_records_survive_other_timestamp_units_and_zones() -> None:
    rows = trades_table([make_trade(1)])
    index = rows.schema.get_field_index("timestamp")
    nanos = rows.column(index).cast(pa.timestamp("ns", "Europe/Paris"))
    record = trade_records(rows.set_column(index, "timestamp", nanos))[0]
    assert record["timestamp"] == "2026-01-01T00:00:01.000000Z"


def _fields() -> dict[str, object]:
    return {
        "trade_id": "BINANCE-1",
        "symbol": "BTCUSDT",
        "exchange": "BINANCE",
        "asset_class": "crypto",
        "price": "1",
        "quantity": "1",
        "currency": "USDT",
        "side": "BUY",
        "ingestion_timestamp": T0,
    }
