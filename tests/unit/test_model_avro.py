"""The shipped TradeV2 schema, the Avro round trip of a Trade, and the Confluent framing."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources

import fastavro
import pytest

from k2.model.codec import AvroBodyError, decode_body, decode_trade, encode_body, encode_trade
from k2.model.names import CONSUMER_GROUP, RECORD_FULL_NAME, SUBJECT, TOPIC
from k2.model.schema import SCHEMA_FILE, parsed_trade_v2_schema, trade_v2_schema
from k2.model.trade import AssetClass, Side, Trade
from k2.model.wire import WireFormatError, split_wire, wire_header

TS = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


def full_trade() -> Trade:
    return Trade.new(
        trade_id="BINANCE-5234567890",
        symbol="BTCUSDT",
        exchange="BINANCE",
        asset_class=AssetClass.CRYPTO,
        timestamp=TS,
        price="9999999999.99999999",
        quantity="0.00000001",
        currency="USDT",
        side=Side.SELL_SHORT,
        ingestion_timestamp=datetime(2026, 1, 1, 0, 0, 1, 1, tzinfo=UTC),
        trade_conditions=["ODD_LOT", "LATE"],
        source_sequence=5234567890,
        platform_sequence=2**62,
        vendor_data={"m": "true", "E": "1767225600124", "empty": ""},
    )


def minimal_trade() -> Trade:
    return Trade.new(
        trade_id="BINANCE-1",
        symbol="ETHBTC",
        exchange="BINANCE",
        asset_class="crypto",
        timestamp=TS,
        price="-0.5",
        quantity="0",
        currency="BTC",
        side="UNKNOWN",
        ingestion_timestamp=TS,
    )


def test_names_are_the_agreed_ones() -> None:
    assert TOPIC == "market.crypto.trades.binance"
    assert SUBJECT == "market.crypto.trades.binance-value"
    assert CONSUMER_GROUP == "k2-iceberg-writer-crypto-v2"
    assert RECORD_FULL_NAME == "com.k2.marketdata.TradeV2"


def test_schema_is_package_data() -> None:
    assert resources.files("k2.model").joinpath(SCHEMA_FILE).is_file()


def test_schema_fields_are_those_of_the_data_model() -> None:
    schema = trade_v2_schema()
    assert (schema["namespace"], schema["name"]) == ("com.k2.marketdata", "TradeV2")
    types = {field["name"]: field["type"] for field in schema["fields"]}
    assert list(types) == [
        "message_id",
        "trade_id",
        "symbol",
        "exchange",
        "asset_class",
        "timestamp",
        "price",
        "quantity",
        "currency",
        "side",
        "trade_conditions",
        "source_sequence",
        "ingestion_timestamp",
        "platform_sequence",
        "vendor_data",
    ]
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 8}
    micros = {"type": "long", "logicalType": "timestamp-micros"}
    assert types["price"] == types["quantity"] == decimal
    assert types["timestamp"] == types["ingestion_timestamp"] == micros
    assert types["asset_class"]["symbols"] == [member.value for member in AssetClass]
    assert types["side"]["symbols"] == [member.value for member in Side]
    assert types["trade_conditions"] == {"type": "array", "items": "string"}
    assert types["source_sequence"] == types["platform_sequence"] == ["null", "long"]
    assert types["vendor_data"] == ["null", {"type": "map", "values": "string"}]
    for name in ("message_id", "trade_id", "symbol", "exchange", "currency"):
        assert types[name] == "string"


@pytest.mark.parametrize("trade", [full_trade(), minimal_trade()], ids=["full", "nulls"])
def test_avro_round_trip_keeps_every_field(trade: Trade) -> None:
    body = encode_trade(trade)
    assert decode_trade(body) == trade
    record = decode_body(body)
    assert record["vendor_data"] == (None if trade.vendor_data is None else dict(trade.vendor_data))
    assert record["price"] == trade.price
    assert record["timestamp"] == trade.timestamp


def test_round_trip_through_plain_fastavro_and_the_avsc_file() -> None:
    trade = full_trade()
    schema = fastavro.parse_schema(trade_v2_schema())
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, trade.to_avro_dict())
    buffer.seek(0)
    record = fastavro.schemaless_reader(buffer, schema, None)
    assert isinstance(record, dict)
    assert record["price"] == Decimal("9999999999.99999999")
    assert record["quantity"] == Decimal("0.00000001")
    assert record["timestamp"] == TS
    assert record["platform_sequence"] == 2**62
    assert record["trade_conditions"] == ["ODD_LOT", "LATE"]
    assert Trade.from_avro_dict(record) == trade


def test_decoded_decimals_keep_scale_8() -> None:
    trade = decode_trade(encode_trade(full_trade()))
    assert trade.quantity.as_tuple().exponent == -8


def test_a_body_with_a_decimal_beyond_18_digits_is_refused_on_decode() -> None:
    # A foreign producer can put any unscaled integer in Avro bytes; precision is not on the wire.
    record = full_trade().to_avro_dict()
    record["price"] = (10**19).to_bytes(9, "big", signed=True)
    with pytest.raises(ValueError, match="price="):
        decode_trade(encode_body(record))


def test_any_undecodable_body_is_one_error_type() -> None:
    # Corrupt a good body many ways: every failure, whatever fastavro raised, is AvroBodyError.
    good = encode_trade(full_trade())
    rng = random.Random(0)
    kinds = set()
    for _ in range(2000):
        body = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        if rng.random() < 0.3:
            body = body[: rng.randrange(len(body))]
        try:
            decode_trade(bytes(body))
        except AvroBodyError as exc:
            kinds.add(type(exc.__cause__).__name__)
        except ValueError:
            pass  # decoded, but no Trade can hold it (e.g. a decimal out of range)
    assert {"EOFError", "UnicodeDecodeError", "IndexError"} <= kinds


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(AvroBodyError, match="1 bytes left"):
        decode_body(encode_trade(full_trade()) + b"\x00")


def test_wire_header_layout() -> None:
    assert wire_header(1) == b"\x00\x00\x00\x00\x01"
    assert wire_header(0x01020304) == b"\x00\x01\x02\x03\x04"
    with pytest.raises(ValueError, match="4 unsigned bytes"):
        wire_header(2**32)


def test_split_wire() -> None:
    schema_id, body = split_wire(wire_header(258) + b"avro")
    assert schema_id == 258
    assert bytes(body) == b"avro"


@pytest.mark.parametrize(
    ("value", "message"),
    [(b"", "too short"), (b"\x00\x00\x01", "too short"), (b"{json: 1}", "magic byte is 0x7b")],
)
def test_split_wire_rejects_unframed_bytes(value: bytes, message: str) -> None:
    with pytest.raises(WireFormatError, match=message):
        split_wire(value)


def test_parsed_schema_is_parsed_once() -> None:
    assert parsed_trade_v2_schema() is parsed_trade_v2_schema()
