"""Arrow rows and Python values to the API's JSON forms.

Decimals become fixed-point strings with exactly 8 places, never floats, and never through
Arrow's decimal-to-string cast, which writes zero as "0E-8" and 0.00000001 as "1E-8".
Timestamps become ISO 8601 UTC with microseconds and `Z`, always the same width, so clients
may compare them as text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from k2.api.compute import TRADE_COLUMNS
from k2.model.decimals import QUANTUM, format_decimal

_SCALE: Final = 8
_UNIT: Final = 10**_SCALE
_MICROS_UTC: Final = pa.timestamp("us", "UTC")
_MICROS_NAIVE: Final = pa.timestamp("us")


def format_instant(value: datetime) -> str:
    """`value` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC."""
    utc = value.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def format_price(value: Decimal) -> str:
    """A decimal(18,8) value as text with exactly 8 decimal places."""
    return format_decimal(value.quantize(QUANTUM))


def _timestamps(column: pa.ChunkedArray) -> list[str | None]:
    # Arrow stores instants as UTC; dropping the zone keeps the UTC wall time, and the
    # naive cast to text is ~7x faster than strftime or a zoned cast. It prints
    # "YYYY-MM-DD HH:MM:SS.ffffff" (six digits for microseconds, zeros included).
    text = column.cast(_MICROS_UTC).cast(_MICROS_NAIVE).cast(pa.string())
    iso = pc.binary_join_element_wise(
        pc.replace_substring(text, " ", "T", max_replacements=1), "Z", ""
    )
    values: list[str | None] = iso.to_pylist()
    return values


def _decimals(column: pa.ChunkedArray) -> list[str | None]:
    if not (pa.types.is_decimal(column.type) and column.type.scale == _SCALE):
        return [None if v is None else format_price(Decimal(v)) for v in column.to_pylist()]
    # Integer arithmetic in Arrow: value * 1e8 is an exact integer, then whole and fraction
    # parts are joined as text. Five times faster than formatting Decimal objects.
    factor = pa.scalar(Decimal(_UNIT), pa.decimal128(_SCALE + 1, 0))
    scaled = pc.cast(pc.multiply(column, factor), pa.int64())
    magnitude = pc.abs(scaled)
    whole = pc.divide(magnitude, _UNIT)
    fraction = pc.subtract(magnitude, pc.multiply(whole, _UNIT))
    text = pc.binary_join_element_wise(
        whole.cast(pa.string()), pc.utf8_lpad(fraction.cast(pa.string()), _SCALE, "0"), "."
    )
    signed = pc.if_else(pc.less(scaled, 0), pc.binary_join_element_wise("-", text, ""), text)
    values: list[str | None] = signed.to_pylist()
    return values


def _maps(column: pa.ChunkedArray) -> list[dict[str, str] | None]:
    return [None if pairs is None else dict(pairs) for pairs in column.to_pylist()]


def _plain(column: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_dictionary(column.type):
        # Decoded first: to_pylist on a dictionary column makes a Python scalar per value.
        column = column.cast(column.type.value_type)
    values: list[Any] = column.to_pylist()
    return values


_CONVERTERS: Final[dict[str, Callable[[pa.ChunkedArray], list[Any]]]] = {
    "timestamp": _timestamps,
    "ingestion_timestamp": _timestamps,
    "price": _decimals,
    "quantity": _decimals,
    "vendor_data": _maps,
}


def trade_records(rows: pa.Table) -> list[dict[str, Any]]:
    """The JSON objects of `rows` (TradeV2 columns), in row order, keys in Avro field order.

    Conversion is column by column (one Arrow call per timestamp column), then zipped, which
    is several times faster than converting row by row.
    """
    columns = [_CONVERTERS.get(name, _plain)(rows.column(name)) for name in TRADE_COLUMNS]
    return [dict(zip(TRADE_COLUMNS, values, strict=True)) for values in zip(*columns, strict=True)]
