"""Sample trades and the API built over them, shared by the k2-query-api unit tests.

Kept in one place so the example-based tests and the schema-driven ones exercise the same
app, data and key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

from k2.api.app import create_app
from k2.api.memory import InMemoryTradeRepository
from k2.model.trade import Trade

KEY = "unit-test-key"
AUTH = {"X-API-Key": KEY}
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY2 = datetime(2026, 1, 2, 0, 0, tzinfo=UTC)


def make_trade(n: int, **changes: Any) -> Trade:
    """Trade number `n` of BTCUSDT at T0 + n seconds, with `changes` applied."""
    fields: dict[str, Any] = {
        "trade_id": f"BINANCE-{n}",
        "symbol": "BTCUSDT",
        "exchange": "BINANCE",
        "asset_class": "crypto",
        "timestamp": T0 + timedelta(seconds=n),
        "price": "43251.12345678",
        "quantity": "0.00100000",
        "currency": "USDT",
        "side": "BUY",
        "ingestion_timestamp": T0 + timedelta(seconds=n, milliseconds=5),
        "source_sequence": n,
        "vendor_data": {"t": str(n), "m": "false"},
    }
    fields.update(changes)
    return Trade.new(**fields)


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
