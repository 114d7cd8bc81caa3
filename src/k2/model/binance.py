"""Binance trade frames (`<symbol>@trade` stream) to TradeV2.

Raises MalformedFrameError for a frame that does not describe one trade: a missing or
mistyped field, a price or quantity that decimal(18,8) cannot hold exactly, a symbol with no
known quote currency. A frame that is well formed but implausible (a zero price) maps fine and
is left to `validate`, which is where the consumer decides to dead-letter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from k2.model.decimals import to_decimal_18_8
from k2.model.names import EXCHANGE_BINANCE
from k2.model.timestamps import from_millis
from k2.model.trade import AssetClass, Side, Trade

QUOTE_CURRENCIES: Final = frozenset(
    {
        # Stablecoins first in spirit: most volume is quoted in them.
        "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "PAX", "AEUR", "EURI", "USD",
        # Crypto quotes.
        "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT",
        # Fiat quotes.
        "EUR", "TRY", "GBP", "BRL", "AUD", "JPY", "RUB", "UAH", "ZAR", "PLN", "RON", "ARS",
        "MXN", "COP", "CZK", "NGN", "IDRT", "BIDR",
    }
)  # fmt: skip
"""Quote currencies recognised as a symbol's suffix."""

# Longest first, so BTCFDUSD is FDUSD and BTCBUSD is BUSD, not USD.
_LENGTHS: Final = tuple(sorted({len(code) for code in QUOTE_CURRENCIES}, reverse=True))
_EXPECTED_KEYS: Final = ("e", "E", "s", "t", "p", "q", "T", "m")


class MalformedFrameError(ValueError):
    """A Binance frame that is not one well-formed trade; the message names the field."""


def quote_currency(symbol: str) -> str | None:
    """The quote currency a symbol ends with (longest known match), or None if none fits."""
    for length in _LENGTHS:
        if len(symbol) > length and symbol[-length:] in QUOTE_CURRENCIES:
            return symbol[-length:]
    return None


def _vendor_value(value: object) -> str:
    # Binance's own JSON spelling, so vendor_data reads like the frame: true, not True.
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _fail(frame: object, problem: str) -> MalformedFrameError:
    # Bounded, because the message ends up in logs and dead-letter headers.
    return MalformedFrameError(
        f"malformed Binance trade frame: {_shorten(problem)}; frame={_shorten(repr(frame))}"
    )


def _int_field(frame: object, data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if type(value) is not int or value < 0:
        raise _fail(frame, f"data.{key}={value!r} is not a non-negative integer")
    return value


def _str_field(frame: object, data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if type(value) is not str or not value:
        raise _fail(frame, f"data.{key}={value!r} is not a non-empty string")
    return value


def _decimal_field(frame: object, data: Mapping[str, Any], key: str, name: str) -> Decimal:
    text = _str_field(frame, data, key)
    try:
        return to_decimal_18_8(name, text)
    except ValueError as exc:
        raise _fail(frame, f"data.{key}: {exc}") from None


def from_binance_frame(frame: Mapping[str, Any], ingestion_ts: datetime) -> Trade:
    """The TradeV2 of one combined-stream trade frame, received at `ingestion_ts` (aware UTC).

    `{"stream": "btcusdt@trade", "data": {"e": "trade", "E": ms, "s": "BTCUSDT", "t": id,
    "p": "price", "q": "qty", "T": trade ms, "m": buyer_is_maker}}` becomes trade_id
    BINANCE-<t>, timestamp T*1000 micros, side SELL if m (the buyer was the resting order, so
    the aggressor sold) else BUY, currency from the symbol's suffix, source_sequence t and
    every raw data field, as a string, in vendor_data.
    """
    if not isinstance(frame, Mapping):
        raise _fail(frame, f"expected a JSON object, got {type(frame).__name__}")
    data = frame.get("data")
    if not isinstance(data, Mapping):
        raise _fail(frame, "no 'data' object")
    missing = [key for key in _EXPECTED_KEYS if key not in data]
    if missing:
        raise _fail(frame, f"data has no {', '.join(missing)}")
    if data["e"] != "trade":
        raise _fail(frame, f"data.e={data['e']!r} is not 'trade'")
    symbol = _str_field(frame, data, "s")
    if not (symbol.isascii() and symbol.isalnum() and symbol.isupper()):
        raise _fail(frame, f"data.s={symbol!r} is not an upper-case Binance symbol")
    stream = frame.get("stream")
    if stream != f"{symbol.lower()}@trade":
        raise _fail(frame, f"stream={stream!r} does not match data.s={symbol!r}")
    trade_number = _int_field(frame, data, "t")
    trade_ms = _int_field(frame, data, "T")
    _int_field(frame, data, "E")
    buyer_is_maker = data["m"]
    if type(buyer_is_maker) is not bool:
        raise _fail(frame, f"data.m={buyer_is_maker!r} is not a boolean")
    currency = quote_currency(symbol)
    if currency is None:
        raise _fail(frame, f"data.s={symbol!r} ends in no known quote currency")
    price = _decimal_field(frame, data, "p", "price")
    quantity = _decimal_field(frame, data, "q", "quantity")
    try:
        timestamp = from_millis(trade_ms)
    except OverflowError:
        raise _fail(frame, f"data.T={trade_ms} is beyond any date") from None
    return Trade.new(
        trade_id=f"{EXCHANGE_BINANCE}-{trade_number}",
        symbol=symbol,
        exchange=EXCHANGE_BINANCE,
        asset_class=AssetClass.CRYPTO,
        timestamp=timestamp,
        price=price,
        quantity=quantity,
        currency=currency,
        side=Side.SELL if buyer_is_maker else Side.BUY,
        ingestion_timestamp=ingestion_ts,
        source_sequence=trade_number,
        vendor_data={key: _vendor_value(value) for key, value in data.items()},
    )
