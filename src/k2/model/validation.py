"""Plausibility checks on a Trade: the reasons the consumer dead-letters a decodable record.

`validate` returns every problem it finds instead of raising at the first, so a dead-letter
record says all that is wrong with it. Each problem names the field and its value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from k2.model.decimals import format_decimal
from k2.model.ids import message_id_for
from k2.model.trade import Trade

MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far ahead of `now` a timestamp may be: venue and K2 clocks disagree a little, not more."""

EARLIEST_TIMESTAMP: Final = datetime(2009, 1, 3, tzinfo=UTC)
"""The Bitcoin genesis block. An earlier trade time is a unit error (ms read as micros)."""

_ZERO: Final = Decimal(0)


def _symbol_problems(trade: Trade) -> list[str]:
    symbol = trade.symbol
    if not symbol.strip():
        return [f"symbol={symbol!r} is empty"]
    problems = []
    if not (symbol.isascii() and symbol.isalnum() and symbol.isupper()):
        problems.append(f"symbol={symbol!r} is not upper-case letters and digits")
    if not trade.currency:
        problems.append(f"currency={trade.currency!r} is empty")
    elif len(symbol) <= len(trade.currency) or not symbol.endswith(trade.currency):
        problems.append(
            f"currency={trade.currency!r} does not match the suffix of symbol={symbol!r}"
        )
    return problems


def _time_problems(trade: Trade, now: datetime, max_skew: timedelta) -> list[str]:
    problems = []
    latest = now + max_skew
    for name, value in (
        ("timestamp", trade.timestamp),
        ("ingestion_timestamp", trade.ingestion_timestamp),
    ):
        if value > latest:
            problems.append(f"{name}={value.isoformat()} is more than {max_skew} in the future")
        elif value < EARLIEST_TIMESTAMP:
            problems.append(f"{name}={value.isoformat()} is before {EARLIEST_TIMESTAMP.date()}")
    return problems


def validate(
    trade: Trade, *, now: datetime | None = None, max_skew: timedelta = MAX_CLOCK_SKEW
) -> list[str]:
    """Everything implausible about `trade`; an empty list means write it.

    `now` (aware) defaults to the wall clock; tests pass a fixed one.
    """
    problems = _symbol_problems(trade)
    if not trade.exchange.strip():
        problems.append(f"exchange={trade.exchange!r} is empty")
    if not trade.trade_id.strip():
        problems.append(f"trade_id={trade.trade_id!r} is empty")
    elif trade.exchange and not trade.trade_id.startswith(f"{trade.exchange}-"):
        problems.append(
            f"trade_id={trade.trade_id!r} does not start with exchange={trade.exchange!r} and '-'"
        )
    expected_id = message_id_for(trade.symbol, trade.trade_id)
    if trade.message_id != expected_id:
        problems.append(
            f"message_id={trade.message_id!r} is not the deterministic id {expected_id!r} "
            "of symbol and trade_id"
        )
    if trade.price <= _ZERO:
        problems.append(f"price={format_decimal(trade.price)} is not positive")
    if trade.quantity <= _ZERO:
        problems.append(f"quantity={format_decimal(trade.quantity)} is not positive")
    problems += _time_problems(trade, now if now is not None else datetime.now(UTC), max_skew)
    for name, sequence in (
        ("source_sequence", trade.source_sequence),
        ("platform_sequence", trade.platform_sequence),
    ):
        if sequence is not None and sequence < 0:
            problems.append(f"{name}={sequence} is negative")
    return problems
