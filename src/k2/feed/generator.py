"""A seeded stand-in for the live Binance trade stream: same frames, same seed, same output.

Prices walk in whole ticks (integers), so every price is exact and the walk is the same on
every machine; they are written as Binance writes them, with all 8 decimals ("60000.01000000").
Trade ids rise by one per trade of a symbol, as on Binance, and every symbol starts at the same
`first_trade_id`: Binance trade ids are per symbol, and a downstream keyed on trade_id alone
should fail the tests rather than production.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from k2.model.timestamps import to_micros

DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)
"""Trade time of the first generated trade unless told otherwise."""

START_PRICES: Final = {
    "BTCUSDT": Decimal("60000"),
    "BTCFDUSD": Decimal("60000"),
    "ETHUSDT": Decimal("3000"),
    "ETHBTC": Decimal("0.05"),
    "BNBUSDT": Decimal("600"),
    "SOLUSDT": Decimal("150"),
    "XRPUSDT": Decimal("0.5"),
    "DOGEUSDT": Decimal("0.15"),
    "SHIBUSDT": Decimal("0.00002"),
}
"""Plausible opening prices; any other symbol opens at a seeded price between 1e-4 and 1e4."""

_UNITS: Final = 10**8  # 1e-8, the unit every Binance price and quantity string is written in
_MEAN_NOTIONAL: Final = 500.0  # mean trade size, in quote currency


@dataclass(slots=True)
class _Market:
    """One symbol's walk: price in ticks of 10**-price_decimals, quantities in lots."""

    symbol: str
    stream: str
    price_ticks: int
    price_unit: int  # 1e-8 units per price tick
    lot_unit: int  # 1e-8 units per quantity lot
    lots_per_notional: float
    next_trade_id: int


def _units_text(units: int) -> str:
    """1e-8 units as Binance writes a decimal: always 8 fractional digits."""
    whole, fraction = divmod(units, _UNITS)
    return f"{whole}.{fraction:08d}"


def _market(symbol: str, rng: random.Random, first_trade_id: int) -> _Market:
    start = START_PRICES.get(symbol)
    if start is None:
        start = Decimal(f"{10 ** rng.uniform(-4, 4):.6g}")
    magnitude = math.floor(math.log10(start))
    # About seven significant digits of price, as on Binance; quantities finer as price rises.
    price_decimals = min(8, max(0, 6 - magnitude))
    lot_decimals = min(8, max(0, magnitude + 1))
    price_unit = 10 ** (8 - price_decimals)
    lot_unit = 10 ** (8 - lot_decimals)
    return _Market(
        symbol=symbol,
        stream=f"{symbol.lower()}@trade",
        price_ticks=max(1, int(start * _UNITS) // price_unit),
        price_unit=price_unit,
        lot_unit=lot_unit,
        lots_per_notional=_UNITS / lot_unit,
        next_trade_id=first_trade_id,
    )


def generate_frames(
    symbols: Sequence[str],
    *,
    seed: int,
    start: datetime = DEFAULT_START,
    count: int | None = None,
    first_trade_id: int = 1_000_000,
    mean_gap_ms: float = 2.0,
) -> Iterator[dict[str, Any]]:
    """Binance combined-stream trade frames over `symbols`, `count` of them (None: endless).

    Deterministic for (symbols, seed, start, first_trade_id, mean_gap_ms). Trade times start at
    `start` (aware) and advance by a seeded gap averaging `mean_gap_ms`, several trades may
    share a millisecond; the event time E trails the trade time by 0-3 ms.
    """
    if not symbols:
        raise ValueError("generate_frames needs at least one symbol")
    if mean_gap_ms < 0:
        raise ValueError(f"mean_gap_ms={mean_gap_ms} is negative")
    rng = random.Random(seed)
    markets = [_market(symbol, rng, first_trade_id) for symbol in symbols]
    trade_ms = to_micros(start) // 1000
    produced = 0
    while count is None or produced < count:
        market = rng.choice(markets)
        # A walk of about 2 bp per trade, never below one tick.
        sigma = max(1.0, market.price_ticks * 0.0002)
        market.price_ticks = max(1, market.price_ticks + round(rng.gauss(0.0, sigma)))
        price_units = market.price_ticks * market.price_unit
        notional_lots = rng.expovariate(1.0) * _MEAN_NOTIONAL * market.lots_per_notional
        lots = max(1, round(notional_lots * _UNITS / price_units))
        trade_id = market.next_trade_id
        market.next_trade_id += 1
        yield {
            "stream": market.stream,
            "data": {
                "e": "trade",
                "E": trade_ms + rng.randint(0, 3),
                "s": market.symbol,
                "t": trade_id,
                "p": _units_text(price_units),
                "q": _units_text(lots * market.lot_unit),
                "T": trade_ms,
                "m": rng.random() < 0.5,
                "M": True,
            },
        }
        produced += 1
        if mean_gap_ms:
            trade_ms += int(rng.expovariate(1.0 / mean_gap_ms))
