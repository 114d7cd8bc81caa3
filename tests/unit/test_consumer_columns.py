"""Trades to Arrow: the table's exact schema, decimals to the last digit, timestamps to the µs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from k2.consumer.columns import TradeColumns
from k2.iceberg.table import arrow_schema
from k2.model.timestamps import to_micros
from k2.model.trade import AssetClass, Side, Trade


def _trade(**changes: object) -> Trade:
    base = Trade.new(
        trade_id="BINANCE-1",
        symbol="BTCUSDT",
        exchange="BINANCE",
        asset_class=AssetClass.CRYPTO,
        timestamp=datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
        price="60000.12345678",
        quantity="0.00000001",
        currency="USDT",
        side=Side.SELL,
        ingestion_timestamp=datetime(2026, 1, 1, 12, 0, 0, 654321, tzinfo=UTC),
        source_sequence=1,
        vendor_data={"p": "60000.12345678", "m": "true"},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _table(*trades: Trade) -> pa.Table:
    columns = TradeColumns()
    for offset, trade in enumerate(trades):
        columns.append(trade, 3, 1000 + offset)
    return columns.to_table()


def test_schema_is_exactly_the_tables() -> None:
    table = _table(_trade())

    assert table.schema.equals(arrow_schema(), check_metadata=True)


def test_an_empty_batch_still_has_the_schema() -> None:
    table = TradeColumns().to_table()

    assert table.num_rows == 0
    assert table.schema.equals(arrow_schema(), check_metadata=True)


@pytest.mark.parametrize(
    "price",
    [
        Decimal("9999999999.99999999"),
        Decimal("0.00000001"),
        Decimal("60000.10000000"),
        Decimal("1.00000000"),
        Decimal("-0.00000001"),
    ],
)
def test_decimals_are_exact(price: Decimal) -> None:
    table = _table(_trade(price=price))

    assert table["price"].type == pa.decimal128(18, 8)
    assert table["price"].to_pylist() == [price]
    assert str(table["price"][0].as_py()) == str(price)


def test_timestamps_are_utc_microseconds() -> None:
    moments = [
        datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2009, 1, 3, tzinfo=UTC) + timedelta(microseconds=1),
    ]
    table = _table(*(_trade(timestamp=m, ingestion_timestamp=m) for m in moments))

    assert table["timestamp"].type == pa.timestamp("us", tz="UTC")
    assert table["timestamp"].to_pylist() == moments
    assert table["timestamp"].cast(pa.int64()).to_pylist() == [to_micros(m) for m in moments]
    assert table["ingestion_timestamp"].to_pylist() == moments


def test_every_column_round_trips() -> None:
    full = _trade(trade_conditions=("X", "Y"), platform_sequence=7)
    bare = _trade(vendor_data=None, source_sequence=None, trade_conditions=())

    rows = _table(full, bare).to_pylist()

    assert rows[0]["message_id"] == full.message_id
    assert rows[0]["asset_class"] == "crypto"
    assert rows[0]["side"] == "SELL"
    assert rows[0]["trade_conditions"] == ["X", "Y"]
    assert rows[0]["vendor_data"] == [("p", "60000.12345678"), ("m", "true")]
    assert (rows[0]["source_sequence"], rows[0]["platform_sequence"]) == (1, 7)
    assert rows[1]["vendor_data"] is None
    assert rows[1]["trade_conditions"] == []
    assert rows[1]["source_sequence"] is None
    assert [(r["kafka_partition"], r["kafka_offset"]) for r in rows] == [(3, 1000), (3, 1001)]


def test_an_empty_vendor_map_is_not_null() -> None:
    assert _table(_trade(vendor_data={})).to_pylist()[0]["vendor_data"] == []
