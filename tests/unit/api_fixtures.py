"""Sample trades and the API built over them, shared by the k2-query-api unit tests.

Kept in one place so the example-based tests and the schema-driven ones exercise the same
app, data and key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from k2.api.app import create_app
from k2.api.memory import InMemoryTradeRepository
from k2.model.trade import Trade
from tests.unit.trades import T0, make_trade

__all__ = ["AUTH", "DAY2", "KEY", "T0", "make_trade", "sample_app", "sample_trades"]

KEY = "unit-test-key"
AUTH = {"X-API-Key": KEY}
DAY2 = datetime(2026, 1, 2, 0, 0, tzinfo=UTC)


def sample_trades() -> list[Trade]:
    """17 trades: two symbols, two UTC days, ties on timestamp and a price of 1e-8."""
    trades = [make_trade(n) for n in range(10)]
    trades += [make_trade(100 + n, symbol="ETHUSDT", price="2500.5") for n in range(3)]
    # Three trades in one microsecond: only message_id can order them.
    trades += [make_trade(200 + n, timestamp=T0 + timedelta(seconds=5)) for n in range(3)]
    trades.append(make_trade(300, timestamp=DAY2 + timedelta(hours=1), price="0.00000001"))
    return trades


def sample_app(repository: InMemoryTradeRepository | None = None) -> FastAPI:
    """The API over `repository` (default: the sample trades), admitting KEY."""
    if repository is None:
        repository = InMemoryTradeRepository.of(sample_trades())
    return create_app(repository, api_key=KEY)
