"""One Kafka value to one valid Trade, or the verdict that it is bad input and why.

The fast path is k2.model's: split the Confluent header, look the writer schema up by id (cached),
decode the body with fastavro through the codec, check it with `validate`. Every way a value can
be bad ends in Rejected with a kind (the `k2.error.kind` dead-letter header) and a reason; a
registry that cannot answer raises RegistryUnavailableError instead, because that says nothing
about the value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from k2.consumer.registry import BadSchemaError, WriterSchemas
from k2.model.codec import AvroBodyError, decode_trade
from k2.model.trade import Trade
from k2.model.validation import validate
from k2.model.wire import WireFormatError, split_wire

WIRE_FORMAT: Final = "wire-format"
AVRO_BODY: Final = "avro-body"
INVALID_TRADE: Final = "invalid-trade"
VALIDATION: Final = "validation"

_MAX_REASON: Final = 2000


class Rejected(ValueError):
    """A value that will never become a row: dead-letter it with `kind` and `reason`."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON] + "..."


class RecordDecoder:
    """Decodes and validates Confluent-framed TradeV2 values."""

    def __init__(self, schemas: WriterSchemas) -> None:
        self._schemas = schemas

    def decode(self, value: bytes | None, now: datetime) -> Trade:
        """The valid Trade in `value`, checked against wall-clock `now` (aware UTC).

        Raises Rejected for bad input, RegistryUnavailableError when the writer schema cannot
        be fetched right now.
        """
        if value is None:
            raise Rejected(WIRE_FORMAT, "no value (a tombstone is not a trade)")
        try:
            schema_id, body = split_wire(value)
        except WireFormatError as exc:
            raise Rejected(WIRE_FORMAT, str(exc)) from None
        try:
            writer_schema = self._schemas.get(schema_id)
        except BadSchemaError as exc:
            raise Rejected(exc.kind, str(exc)) from None
        try:
            trade = decode_trade(body, writer_schema)
        except AvroBodyError as exc:
            raise Rejected(AVRO_BODY, f"schema id {schema_id}: {exc}") from None
        except (ValueError, TypeError) as exc:  # a Trade invariant the record breaks
            raise Rejected(INVALID_TRADE, str(exc)) from None
        problems = validate(trade, now=now)
        if problems:
            raise Rejected(VALIDATION, "; ".join(problems))
        return trade
