"""TradeSerializer: registration under {topic}-value and the exact Confluent wire format."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from k2.feed.generator import generate_frames
from k2.feed.serializer import TradeSerializer
from k2.model.binance import from_binance_frame
from k2.model.names import SUBJECT, TOPIC, value_subject
from k2.model.schema import trade_v2_schema, trade_v2_schema_str
from k2.model.trade import Trade

INGESTED = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)


class FakeRegistry:
    """In-memory stand-in for SchemaRegistryClient.register_schema."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        self.registered: list[tuple[str, Schema]] = []

    def register_schema(
        self, subject_name: str, schema: Schema, normalize_schemas: bool = False
    ) -> int:
        self.registered.append((subject_name, schema))
        return self.schema_id


def some_trades(count: int = 10) -> list[Trade]:
    frames = generate_frames(["BTCUSDT", "ETHBTC", "SHIBUSDT"], seed=9, count=count)
    return [from_binance_frame(frame, INGESTED) for frame in frames]


def test_registers_the_shipped_schema_under_the_topic_value_subject() -> None:
    registry = FakeRegistry(42)
    serializer = TradeSerializer.register(registry)
    assert serializer.schema_id == 42
    [(subject, schema)] = registry.registered
    assert subject == SUBJECT == f"{TOPIC}-value"
    assert schema.schema_type == "AVRO"
    assert schema.schema_str == trade_v2_schema_str()


def test_another_topic_gets_its_own_subject() -> None:
    registry = FakeRegistry(1)
    TradeSerializer.register(registry, value_subject("market.crypto.trades.test"))
    assert registry.registered[0][0] == "market.crypto.trades.test-value"


def test_wire_format_is_magic_zero_big_endian_id_then_avro_body() -> None:
    serializer = TradeSerializer.register(FakeRegistry(0x01020304))
    for trade in some_trades():
        value = serializer(trade)
        assert value[0] == 0
        assert value[1:5] == b"\x01\x02\x03\x04"
        body = io.BytesIO(value[5:])
        record = fastavro.schemaless_reader(body, fastavro.parse_schema(trade_v2_schema()), None)
        assert body.read() == b""  # the body is exactly one record, nothing after it
        assert isinstance(record, dict)
        assert Trade.from_avro_dict(record) == trade


def test_bytes_are_identical_to_confluent_avro_serializer() -> None:
    # The library's own in-memory registry: both serializers register the same text and get
    # the same id, and the bytes must not differ in a single position.
    registry = SchemaRegistryClient.new_client({"url": "mock://k2-unit-test"})
    ours = TradeSerializer.register(registry)
    reference = AvroSerializer(
        registry, trade_v2_schema_str(), conf={"subject.name.strategy.type": "TOPIC"}
    )
    context = SerializationContext(TOPIC, MessageField.VALUE)
    for trade in some_trades(50):
        assert ours(trade) == reference(trade.to_avro_dict(), context)
    assert registry.get_subjects() == [SUBJECT]
    assert ours.schema_id == registry.get_latest_version(SUBJECT).schema_id


def test_serialize_record_takes_a_plain_dict() -> None:
    serializer = TradeSerializer(5)
    trade = some_trades(1)[0]
    record: dict[str, Any] = trade.to_avro_dict()
    assert serializer.serialize_record(record) == serializer(trade)


def test_a_prepared_trade_encodes_the_same_bytes_as_the_serializer() -> None:
    serializer = TradeSerializer(7)
    placeholder = datetime(2000, 1, 1, tzinfo=UTC)
    sent = [
        INGESTED,
        datetime(2026, 5, 17, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),  # micros 0: a one-byte varint
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),  # negative: zigzag
    ]
    for trade, at in zip(some_trades(40), sent * 10, strict=True):
        prepared = serializer.prepare(dataclasses.replace(trade, ingestion_timestamp=placeholder))
        micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        expected = serializer(dataclasses.replace(trade, ingestion_timestamp=at))
        assert prepared.encode(micros) == expected
        assert prepared.key == trade.symbol.encode()
