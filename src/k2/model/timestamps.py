"""UTC timestamps at microsecond precision, the unit of Avro timestamp-micros and of Iceberg.

Conversions go through integer arithmetic on timedelta, never float seconds, so a microsecond
is never lost to rounding.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)


def utc_now() -> datetime:
    """The current wall-clock time, timezone-aware UTC."""
    return datetime.now(UTC)


def ensure_utc(field: str, value: datetime) -> datetime:
    """`value` in UTC; a naive one is a ValueError naming `field`, since its zone is a guess."""
    if type(value) is datetime and value.tzinfo is UTC:
        return value
    if not isinstance(value, datetime):
        raise ValueError(f"{field}={value!r}: expected a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field}={value.isoformat()} is naive: give it a timezone (UTC)")
    return value.astimezone(UTC)


def to_micros(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (the Avro timestamp-micros value)."""
    return (value - EPOCH) // _ONE_MICROSECOND


def from_micros(micros: int) -> datetime:
    """The UTC datetime `micros` microseconds after the Unix epoch."""
    return EPOCH + timedelta(microseconds=micros)


def from_millis(millis: int) -> datetime:
    """The UTC datetime `millis` milliseconds after the Unix epoch (Binance's unit)."""
    return EPOCH + timedelta(milliseconds=millis)
