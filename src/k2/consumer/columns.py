"""Trades to one Arrow table per batch, built column by column to match arrow_schema() exactly.

Appending a trade is a handful of list appends; the conversion to Arrow happens once per batch
in pyarrow's C++ (decimals straight from Decimal, timestamps from int micros, the vendor map from
flat key/value lists), which is what keeps the writer at tens of thousands of rows per second.
"""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa

from k2.iceberg.table import arrow_schema
from k2.model.timestamps import to_micros
from k2.model.trade import Trade

SCHEMA: Final = arrow_schema()
"""The table's Arrow schema, field ids and nullability included."""

_LIST_TYPE: Final = SCHEMA.field("trade_conditions").type
_MAP_TYPE: Final = SCHEMA.field("vendor_data").type
_TEXT: Final = pa.large_string()


class TradeColumns:
    """The rows of one batch, held as Python lists per column until `to_table`."""

    __slots__ = (
        "_asset_class",
        "_condition_offsets",
        "_conditions",
        "_currency",
        "_exchange",
        "_ingestion_timestamp",
        "_kafka_offset",
        "_kafka_partition",
        "_message_id",
        "_platform_sequence",
        "_price",
        "_quantity",
        "_side",
        "_source_sequence",
        "_symbol",
        "_timestamp",
        "_trade_id",
        "_vendor_keys",
        "_vendor_null",
        "_vendor_offsets",
        "_vendor_values",
    )

    def __init__(self) -> None:
        self._message_id: list[str] = []
        self._trade_id: list[str] = []
        self._symbol: list[str] = []
        self._exchange: list[str] = []
        self._asset_class: list[str] = []
        self._timestamp: list[int] = []
        self._price: list[Any] = []
        self._quantity: list[Any] = []
        self._currency: list[str] = []
        self._side: list[str] = []
        self._conditions: list[str] = []
        self._condition_offsets: list[int] = [0]
        self._source_sequence: list[int | None] = []
        self._ingestion_timestamp: list[int] = []
        self._platform_sequence: list[int | None] = []
        self._vendor_keys: list[str] = []
        self._vendor_values: list[str] = []
        self._vendor_offsets: list[int] = [0]
        self._vendor_null: list[bool] = []
        self._kafka_partition: list[int] = []
        self._kafka_offset: list[int] = []

    def __len__(self) -> int:
        return len(self._kafka_offset)

    def append(self, trade: Trade, partition: int, offset: int) -> None:
        """Add one trade read from Kafka `partition` at `offset` (the lineage columns)."""
        self._message_id.append(trade.message_id)
        self._trade_id.append(trade.trade_id)
        self._symbol.append(trade.symbol)
        self._exchange.append(trade.exchange)
        self._asset_class.append(trade.asset_class.value)
        self._timestamp.append(to_micros(trade.timestamp))
        self._price.append(trade.price)
        self._quantity.append(trade.quantity)
        self._currency.append(trade.currency)
        self._side.append(trade.side.value)
        if trade.trade_conditions:
            self._conditions.extend(trade.trade_conditions)
        self._condition_offsets.append(len(self._conditions))
        self._source_sequence.append(trade.source_sequence)
        self._ingestion_timestamp.append(to_micros(trade.ingestion_timestamp))
        self._platform_sequence.append(trade.platform_sequence)
        vendor = trade.vendor_data
        if vendor is None:
            self._vendor_null.append(True)
        else:
            self._vendor_null.append(False)
            self._vendor_keys.extend(vendor.keys())
            self._vendor_values.extend(vendor.values())
        self._vendor_offsets.append(len(self._vendor_keys))
        self._kafka_partition.append(partition)
        self._kafka_offset.append(offset)

    def to_table(self) -> pa.Table:
        """One Arrow table of every appended row, typed exactly as arrow_schema().

        Decimals convert from Decimal without rounding (pyarrow refuses to lose digits) and
        timestamps from int microseconds, so no value passes through a float.
        """
        timestamp_type = SCHEMA.field("timestamp").type
        decimal_type = SCHEMA.field("price").type
        conditions = pa.LargeListArray.from_arrays(
            pa.array(self._condition_offsets, pa.int64()),
            pa.array(self._conditions, _TEXT),
            type=_LIST_TYPE,
        )
        vendor = pa.MapArray.from_arrays(
            pa.array(self._vendor_offsets, pa.int32()),
            pa.array(self._vendor_keys, _TEXT),
            pa.array(self._vendor_values, _TEXT),
            type=_MAP_TYPE,
            mask=pa.array(self._vendor_null, pa.bool_()) if any(self._vendor_null) else None,
        )
        columns = [
            pa.array(self._message_id, _TEXT),
            pa.array(self._trade_id, _TEXT),
            pa.array(self._symbol, _TEXT),
            pa.array(self._exchange, _TEXT),
            pa.array(self._asset_class, _TEXT),
            pa.array(self._timestamp, timestamp_type),
            pa.array(self._price, decimal_type),
            pa.array(self._quantity, decimal_type),
            pa.array(self._currency, _TEXT),
            pa.array(self._side, _TEXT),
            conditions,
            pa.array(self._source_sequence, pa.int64()),
            pa.array(self._ingestion_timestamp, timestamp_type),
            pa.array(self._platform_sequence, pa.int64()),
            vendor,
            pa.array(self._kafka_partition, pa.int32()),
            pa.array(self._kafka_offset, pa.int64()),
        ]
        return pa.Table.from_arrays(columns, schema=SCHEMA)
