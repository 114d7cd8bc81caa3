"""The Confluent wire format: magic byte 0, the 4-byte big-endian schema id, the Avro body."""

from __future__ import annotations

import struct
from typing import Final

MAGIC_BYTE: Final = 0
HEADER_SIZE: Final = 5
_HEADER: Final = struct.Struct(">bI")


class WireFormatError(ValueError):
    """Bytes that are not a Confluent-framed value (what a consumer dead-letters unread)."""


def wire_header(schema_id: int) -> bytes:
    """The 5 bytes that precede every Avro body written with schema `schema_id`."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise ValueError(f"schema_id={schema_id} does not fit 4 unsigned bytes")
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def split_wire(value: bytes) -> tuple[int, memoryview]:
    """The schema id and the Avro body of a framed value (the body is a view, not a copy)."""
    if len(value) < HEADER_SIZE:
        raise WireFormatError(f"{len(value)} bytes is too short for a Confluent header")
    magic, schema_id = _HEADER.unpack_from(value)
    if magic != MAGIC_BYTE:
        raise WireFormatError(f"magic byte is {magic & 0xFF:#04x}, expected 0x00")
    return schema_id, memoryview(value)[HEADER_SIZE:]
