"""Validated query parameters: which trades, which page, and the parsing of their text forms.

Parsing lives here, not in the routes, so the rules (aware timestamps only, upper-case
symbols, strict dates) are stated once and tested without HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

MAX_LIMIT: Final = 10_000
DEFAULT_LIMIT: Final = 100
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_CODE: Final = re.compile(r"[A-Z0-9]{1,32}")
_DAY: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


class ParameterError(ValueError):
    """A parameter that failed a check FastAPI cannot express (a 422).

    `location` is where the parameter came from ("query" or "path"), `name` its name.
    """

    def __init__(self, name: str, message: str, location: str = "query") -> None:
        super().__init__(f"{location}.{name}: {message}")
        self.name = name
        self.message = message
        self.location = location


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeFilter:
    """Which trades: every field optional, all given ones must hold; times are inclusive."""

    symbol: str | None = None
    exchange: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        """Refuse an empty window here too, so no caller can build one by mistake."""
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ParameterError(
                "start_time",
                f"start_time {self.start.isoformat()} is after end_time {self.end.isoformat()}",
            )


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page of the newest-first order: `limit` rows after skipping `offset`."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def __post_init__(self) -> None:
        """Bounds are checked by FastAPI already; this keeps direct callers honest."""
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ParameterError("limit", f"must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.offset < 0:
            raise ParameterError("offset", f"must be >= 0, got {self.offset}")


def parse_code(name: str, text: str | None, location: str = "query") -> str | None:
    """A symbol or exchange code, upper-cased (K2 stores them upper-case), or None if absent."""
    if text is None:
        return None
    code = text.strip().upper()
    if not _CODE.fullmatch(code):
        raise ParameterError(
            name, f"{text!r} is not 1 to 32 letters and digits, e.g. BTCUSDT", location
        )
    return code


def parse_instant(name: str, text: str | None) -> datetime | None:
    """An ISO 8601 timestamp with a zone (`Z` or an offset), in UTC; None if absent.

    A naive timestamp is refused, not assumed UTC: a client in another zone would silently get
    the wrong hours, which is worse than a 422 that says what to add.
    """
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ParameterError(
            name, f"{text!r} is not an ISO 8601 timestamp, e.g. 2026-01-01T00:00:00Z"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ParameterError(
            name, f"{text!r} has no timezone: add Z or an offset, e.g. 2026-01-01T00:00:00Z"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ParameterError(name, f"{text!r} is out of range in UTC") from None


def parse_day(name: str, text: str, location: str = "path") -> date:
    """A calendar date written YYYY-MM-DD exactly (no week dates, no compact form)."""
    if not _DAY.fullmatch(text):
        raise ParameterError(name, f"{text!r} is not a date written YYYY-MM-DD", location)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ParameterError(name, f"{text!r} is not a valid date: {exc}", location) from None


def utc_day_window(day: date) -> tuple[datetime, datetime]:
    """The first and last microsecond of `day` in UTC, for an inclusive TradeFilter."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1) - _ONE_MICROSECOND
