"""Avro bodies of TradeV2 records (no framing): fastavro with the schema parsed once.

Decoding untrusted bytes fails in many ways inside fastavro (EOFError, UnicodeDecodeError,
IndexError for an enum index, OverflowError for a timestamp); `decode_body` turns them all into
one AvroBodyError, so the consumer has one exception to dead-letter on.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro
from fastavro.types import Schema

from k2.model.schema import parsed_trade_v2_schema
from k2.model.trade import Trade


class AvroBodyError(ValueError):
    """Bytes that are not one TradeV2 record under the given writer schema."""


def encode_body(record: dict[str, Any]) -> bytes:
    """The Avro binary encoding of one TradeV2 record dict (`Trade.to_avro_dict()`)."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed_trade_v2_schema(), record)
    return buffer.getvalue()


def decode_body(body: bytes | memoryview, writer_schema: Schema | None = None) -> dict[str, Any]:
    """A TradeV2 record dict from its Avro body, or AvroBodyError.

    `writer_schema` is the parsed schema the body was written with (looked up by the id in
    its header); by default the current TradeV2, which is also the reader schema. The body must
    be exactly one record: trailing bytes mean the writer schema is not the one named.
    """
    reader = parsed_trade_v2_schema()
    buffer = io.BytesIO(body)
    try:
        if writer_schema is None or writer_schema is reader:
            # No schema resolution needed: the consumer's common case, and the cheap one.
            record = fastavro.schemaless_reader(buffer, reader, None)
        else:
            record = fastavro.schemaless_reader(buffer, writer_schema, reader)
    except Exception as exc:  # untrusted bytes: any failure to decode is the same verdict
        raise AvroBodyError(f"not a TradeV2 Avro body: {type(exc).__name__}: {exc}") from exc
    if not isinstance(record, dict):
        raise AvroBodyError(f"TradeV2 body decoded to {type(record).__name__}, not a record")
    trailing = len(body) - buffer.tell()
    if trailing:
        raise AvroBodyError(f"{trailing} bytes left after the TradeV2 record")
    return record


def encode_trade(trade: Trade) -> bytes:
    """The Avro body of a Trade."""
    return encode_body(trade.to_avro_dict())


def decode_trade(body: bytes | memoryview, writer_schema: Schema | None = None) -> Trade:
    """A Trade from an Avro body; a ValueError (AvroBodyError or a Trade invariant) if none."""
    return Trade.from_avro_dict(decode_body(body, writer_schema))
