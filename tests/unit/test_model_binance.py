"""Binance trade frames to TradeV2, and the frames that must be refused."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from k2.model.binance import MalformedFrameError, from_binance_frame, quote_currency
from k2.model.ids import message_id_for
from k2.model.trade import AssetClass, Side
from k2.model.validation import validate

INGESTED = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


def frame(**data: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "e": "trade",
        "E": 1767225600124,
        "s": "BTCUSDT",
        "t": 5234567890,
        "p": "43251.12345678",
        "q": "0.00100000",
        "T": 1767225600123,
        "m": True,
        "M": True,
    }
    payload.update(data)
    return {"stream": f"{str(payload['s']).lower()}@trade", "data": payload}


def test_every_field_is_mapped() -> None:
    trade = from_binance_frame(frame(), INGESTED)
    assert trade.trade_id == "BINANCE-5234567890"
    assert trade.message_id == message_id_for("BTCUSDT", "BINANCE-5234567890")
    assert trade.symbol == "BTCUSDT"
    assert trade.exchange == "BINANCE"
    assert trade.asset_class is AssetClass.CRYPTO
    assert trade.timestamp == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert trade.price == Decimal("43251.12345678")
    assert trade.quantity == Decimal("0.00100000")
    assert trade.currency == "USDT"
    assert trade.side is Side.SELL  # buyer was the maker: the aggressor sold
    assert trade.trade_conditions == ()
    assert trade.source_sequence == 5234567890
    assert trade.ingestion_timestamp == INGESTED
    assert trade.platform_sequence is None
    assert trade.vendor_data == {
        "e": "trade",
        "E": "1767225600124",
        "s": "BTCUSDT",
        "t": "5234567890",
        "p": "43251.12345678",
        "q": "0.00100000",
        "T": "1767225600123",
        "m": "true",
        "M": "true",
    }
    assert validate(trade, now=INGESTED) == []


def test_timestamp_is_trade_time_times_1000_micros() -> None:
    trade = from_binance_frame(frame(T=1), INGESTED)
    assert trade.to_avro_dict()["timestamp"] == 1000


def test_buyer_taker_is_a_buy() -> None:
    assert from_binance_frame(frame(m=False), INGESTED).side is Side.BUY


@pytest.mark.parametrize(
    ("price", "quantity"),
    [("0.00000001", "12345678.12345678"), ("12345678.12345678", "0.00000001")],
)
def test_decimals_are_exact(price: str, quantity: str) -> None:
    trade = from_binance_frame(frame(p=price, q=quantity), INGESTED)
    assert str(trade.price) == price or format(trade.price, "f") == price
    assert format(trade.quantity, "f") == quantity
    assert trade.to_json_dict()["price"] == price


@pytest.mark.parametrize(
    ("symbol", "currency"),
    [
        ("BTCUSDT", "USDT"),
        ("ETHBTC", "BTC"),
        ("BTCFDUSD", "FDUSD"),
        ("BTCBUSD", "BUSD"),
        ("BTCTUSD", "TUSD"),
        ("BNBETH", "ETH"),
        ("XRPBNB", "BNB"),
        ("BTCEUR", "EUR"),
        ("BTCTRY", "TRY"),
        ("USDCUSDT", "USDT"),
        ("BTCUSDC", "USDC"),
        ("ETHDAI", "DAI"),
    ],
)
def test_currency_is_the_longest_known_suffix(symbol: str, currency: str) -> None:
    assert quote_currency(symbol) == currency
    assert from_binance_frame(frame(s=symbol), INGESTED).currency == currency


def test_symbol_that_is_only_a_currency_has_no_quote() -> None:
    assert quote_currency("USDT") is None
    assert quote_currency("BTCXYZ") is None


def _without(key: str) -> dict[str, Any]:
    broken = frame()
    del broken["data"][key]
    return broken


MALFORMED: list[tuple[object, str]] = [
    ([1, 2], "expected a JSON object"),
    ({"stream": "btcusdt@trade"}, "no 'data' object"),
    ({"stream": "btcusdt@trade", "data": "trade"}, "no 'data' object"),
    (_without("p"), "data has no p"),
    (_without("T"), "data has no T"),
    (_without("m"), "data has no m"),
    (frame(e="aggTrade"), "data.e='aggTrade'"),
    (frame(s=""), "data.s=''"),
    (frame(s="btcusdt"), "not an upper-case Binance symbol"),
    (frame(s="BTC-USDT"), "not an upper-case Binance symbol"),
    (frame(s="BTCXYZ"), "no known quote currency"),
    ({**frame(), "stream": "ethusdt@trade"}, "does not match"),
    ({"data": frame()["data"]}, "stream=None"),
    (frame(t="123"), "data.t='123' is not a non-negative integer"),
    (frame(t=-1), "data.t=-1"),
    (frame(t=True), "data.t=True"),
    (frame(T=1.5), "data.T=1.5"),
    (frame(T=10**18), "data.T=1000000000000000000 is beyond any date"),
    (frame(E=None), "data.E=None"),
    (frame(m="true"), "data.m='true' is not a boolean"),
    (frame(p=43251.1), "data.p=43251.1 is not a non-empty string"),
    (frame(p=""), "data.p=''"),
    (frame(p="abc"), "data.p: price='abc' is not a decimal number"),
    (frame(p="0.000000001"), "data.p: price=0.000000001 does not fit decimal.18,8."),
    (frame(q="10000000000"), "data.q: quantity=10000000000 does not fit decimal.18,8."),
]


@pytest.mark.parametrize(("bad", "message"), MALFORMED)
def test_malformed_frames_raise_naming_the_problem(bad: object, message: str) -> None:
    with pytest.raises(MalformedFrameError, match=message) as caught:
        from_binance_frame(bad, INGESTED)  # type: ignore[arg-type]
    assert str(caught.value).startswith("malformed Binance trade frame: ")
    assert isinstance(caught.value, ValueError)


def test_long_frames_are_shortened_in_the_error() -> None:
    bad = frame(e="x" * 1000)
    with pytest.raises(MalformedFrameError) as caught:
        from_binance_frame(bad, INGESTED)
    assert len(str(caught.value)) < 1200
    assert str(caught.value).endswith("...")


def test_a_plausibility_problem_maps_and_is_left_to_validate() -> None:
    trade = from_binance_frame(frame(p="0"), INGESTED)
    assert validate(trade, now=INGESTED) == ["price=0.00000000 is not positive"]


def test_mapping_does_not_change_the_frame() -> None:
    original = frame()
    kept = copy.deepcopy(original)
    from_binance_frame(original, INGESTED)
    assert original == kept


def test_naive_ingestion_time_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="ingestion_timestamp") as caught:
        from_binance_frame(frame(), datetime(2026, 1, 1))
    assert not isinstance(caught.value, MalformedFrameError)
