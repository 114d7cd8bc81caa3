"""Avro bodies of TradeV2 records (no framing): fastavro with the schema parsed once."""

from __future__ import annotations

import io
from typing import Any

import fastavro
from fastavro.types import Schema

from k2.model.schema import parsed_trade_v2_schema
from k2.model.trade import Trade


def encode_body(record: dict[str, Any]) -> bytes:
    """The Avro binary encoding of one TradeV2 record dict (`Trade.to_avro_dict()`)."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed_trade_v2_schema(), record)
    return buffer.getvalue()


def decode_body(body: bytes | memoryview, writer_schema: Schema | None = None) -> dict[str, Any]:
    """A TradeV2 record dict from its Avro body.

    `writer_schema` is the parsed schema the body was written with (looked up by the id in
    its header); by default the current TradeV2, which is also the reader schema.
    """
    reader = parsed_trade_v2_schema()
    if writer_schema is None or writer_schema is reader:
        # No schema resolution needed: the cheap path of the consumer's common case.
        record = fastavro.schemaless_reader(io.BytesIO(body), reader, None)
    else:
        record = fastavro.schemaless_reader(io.BytesIO(body), writer_schema, reader)
    if not isinstance(record, dict):
        raise ValueError(f"TradeV2 body decoded to {type(record).__name__}, not a record")
    return record


def encode_trade(trade: Trade) -> bytes:
    """The Avro body of a Trade."""
    return encode_body(trade.to_avro_dict())


def decode_trade(body: bytes | memoryview, writer_schema: Schema | None = None) -> Trade:
    """A Trade from an Avro body; ValueError for a record no Trade can hold."""
    return Trade.from_avro_dict(decode_body(body, writer_schema))
