"""Trade to Confluent-framed Avro bytes, with the schema registered once, not per message.

The registry part is confluent-kafka's SchemaRegistryClient: register the shipped .avsc under
`{topic}-value` up front (idempotent: the same schema gets its existing id back), so a wrong
registry URL fails before the first message. The per-message part is fastavro's
schemaless_writer behind a header built once: the bytes AvroSerializer writes (a unit test
holds the two equal) without its per-call subject-name lookup and rule hooks, 3-5 us (15-25%)
less per message here. Both spend most of their time in the same fastavro encoder.

A load generator cannot afford even that per message (about 50 us of a 2-core machine's
CPU, at 20,000 msg/s a whole core), and everything but `ingestion_timestamp` is known before
the clock starts. `prepare` therefore encodes a trade ahead of time in two parts, the fields
before the ingestion timestamp and those after it (an Avro record is its fields' encodings
one after another), and `PreparedTrade.encode` adds the timestamp at send time: two byte
copies and a varint.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from typing import Final, Protocol

import fastavro
from confluent_kafka.schema_registry import Schema

from k2.model.names import SUBJECT
from k2.model.schema import parsed_trade_v2_schema, trade_v2_schema, trade_v2_schema_str
from k2.model.trade import Trade
from k2.model.wire import wire_header

AVRO: Final = "AVRO"
SEND_TIME_FIELD: Final = "ingestion_timestamp"
"""The one field whose value is the moment of sending (a long, timestamp-micros)."""


@cache
def _split_schemas() -> tuple[fastavro.types.Schema, fastavro.types.Schema]:
    """TradeV2's fields before and after SEND_TIME_FIELD, each as a record schema of its own."""
    schema = trade_v2_schema()
    names = [field["name"] for field in schema["fields"]]
    cut = names.index(SEND_TIME_FIELD)
    head = {**schema, "name": "TradeV2Head", "fields": schema["fields"][:cut]}
    tail = {**schema, "name": "TradeV2Tail", "fields": schema["fields"][cut + 1 :]}
    return fastavro.parse_schema(head), fastavro.parse_schema(tail)


def _zigzag_varint(value: int) -> bytes:
    """Avro's encoding of a long: zigzag, then 7 bits per byte, low bits first."""
    number = (value << 1) ^ (value >> 63)
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class PreparedTrade:
    """A trade framed and encoded except for its send time; `encode` completes it."""

    trade: Trade
    key: bytes
    head: bytes
    """The wire header and every field before the send time."""
    tail: bytes

    def encode(self, ingestion_micros: int) -> bytes:
        """The full message value with `ingestion_timestamp` = `ingestion_micros`."""
        return self.head + _zigzag_varint(ingestion_micros) + self.tail


class SchemaRegistrar(Protocol):
    """The one registry call the feed needs (SchemaRegistryClient has it; so do test fakes)."""

    def register_schema(
        self, subject_name: str, schema: Schema, normalize_schemas: bool = False
    ) -> int:
        """Register `schema` under `subject_name` (or find it there) and return its id."""
        ...


class TradeSerializer:
    """A callable Trade -> bytes: magic 0, 4-byte big-endian schema id, Avro body."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        self._header = wire_header(schema_id)
        self._schema = parsed_trade_v2_schema()

    @classmethod
    def register(cls, registry: SchemaRegistrar, subject: str = SUBJECT) -> TradeSerializer:
        """Register TradeV2 under `subject` (TopicNameStrategy: `{topic}-value`) and use its id."""
        return cls(registry.register_schema(subject, Schema(trade_v2_schema_str(), AVRO)))

    def serialize_record(self, record: dict[str, object]) -> bytes:
        """Frame and encode one TradeV2 record dict."""
        buffer = io.BytesIO()
        buffer.write(self._header)
        fastavro.schemaless_writer(buffer, self._schema, record)
        return buffer.getvalue()

    def __call__(self, trade: Trade) -> bytes:
        """Frame and encode one Trade."""
        return self.serialize_record(trade.to_avro_dict())

    def prepare(self, trade: Trade) -> PreparedTrade:
        """Encode `trade` ahead of sending; its own ingestion_timestamp is not used."""
        record = trade.to_avro_dict()
        head_schema, tail_schema = _split_schemas()
        head = io.BytesIO()
        head.write(self._header)
        fastavro.schemaless_writer(head, head_schema, record)
        tail = io.BytesIO()
        fastavro.schemaless_writer(tail, tail_schema, record)
        return PreparedTrade(trade, trade.symbol.encode(), head.getvalue(), tail.getvalue())
