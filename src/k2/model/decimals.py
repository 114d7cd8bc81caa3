"""Exact decimal(18,8), the type of every price and quantity from Kafka to Iceberg to the API.

K2 never rounds a price silently: a value with significant digits beyond the 8th decimal, or
with more than 10 integer digits, is rejected with a ValueError naming the field, because a
rounded trade is a wrong trade that nothing downstream can detect. Trailing zeros beyond the
8th decimal ("1.000000000") lose nothing and are accepted.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal
from typing import Final

PRECISION: Final = 18
SCALE: Final = 8
QUANTUM: Final = Decimal(1).scaleb(-SCALE)
"""1E-8: every stored decimal carries exactly this exponent."""
LIMIT: Final = Decimal(10) ** (PRECISION - SCALE)
"""10**10: the smallest magnitude decimal(18,8) cannot hold."""
MAX_VALUE: Final = LIMIT - QUANTUM
"""9999999999.99999999, the largest decimal(18,8)."""

# Wide enough that quantize never fails for a value that could fit, so the only failures left
# are the two this module reports in its own words.
_CONTEXT: Final = Context(prec=60)
_ZERO: Final = Decimal(0).quantize(QUANTUM)
# Plain decimal text only: Decimal() alone would also take "NaN", " 1", "1_000" and "Infinity".
_DECIMAL_TEXT: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def to_decimal_18_8(field: str, value: Decimal | str | int) -> Decimal:
    """`value` as a Decimal with exponent exactly -8, or ValueError naming `field` and `value`.

    Strings are parsed as written (Binance sends prices as strings); floats are refused because
    a binary float is already inexact before it gets here.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise ValueError(
            f"{field}={value!r}: expected a decimal string, int or Decimal, "
            f"not {type(value).__name__}"
        )
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        raise ValueError(f"{field}={value!r} is not a decimal number")
    number = value if isinstance(value, Decimal) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{field}={value!r} is not a finite decimal")
    if abs(number) >= LIMIT:
        raise ValueError(
            f"{field}={value!s} does not fit decimal(18,8): more than 10 integer digits "
            f"(largest is {MAX_VALUE})"
        )
    quantized = number.quantize(QUANTUM, context=_CONTEXT)
    if quantized != number:
        raise ValueError(
            f"{field}={value!s} does not fit decimal(18,8): more than 8 fractional digits, "
            "and K2 does not round"
        )
    return _ZERO if quantized.is_zero() else quantized


def check_decimal_18_8(field: str, value: Decimal | str | int) -> Decimal:
    """The hot-path check: `value` itself when already exact at scale 8, else the full check.

    A decoded Avro decimal always has exponent -8, so this costs two comparisons per field.
    """
    if type(value) is Decimal and value.same_quantum(QUANTUM) and -LIMIT < value < LIMIT:
        return value
    return to_decimal_18_8(field, value)


def format_decimal(value: Decimal) -> str:
    """Fixed-point text with all 8 decimals ("0.00000001", never "1E-8"), for JSON and logs."""
    return format(value, "f")
