"""One trade factory for the unit tests: a valid TradeV2, changed only where a test cares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from k2.model.trade import Trade

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_trade(n: int = 1, **changes: Any) -> Trade:
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
