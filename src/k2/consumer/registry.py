"""Writer schemas by id from the schema registry: fetched once per id, parsed once, cached.

The registry's answers split in two. "This id does not exist" is a fact about the message: it
is bad input and gets dead-lettered. That is HTTP 404 with the Confluent error code 40403, or a
404 with another code from a registry that otherwise answers (it lists its subjects), since not
every Confluent-compatible registry sets the code. Anything else (connection refused, timeout,
5xx, or a 404 from a URL that is not a registry at all, i.e. a wrong base URL) says nothing
about the message: it is RegistryUnavailableError, and the writer waits and retries instead of
dead-lettering good data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import fastavro
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.types import Schema as ParsedSchema

from k2.model.schema import parsed_trade_v2_schema, trade_v2_schema

SCHEMA_NOT_FOUND: Final = 40403
"""The Confluent API's error code for an unknown schema id (Apicurio's ccompat API uses it too)."""

UNKNOWN_ID_TTL_S: Final = 60.0
"""How long an id the registry denied is believed unknown before asking again."""


class SchemaFetcher(Protocol):
    """The registry calls the writer needs (SchemaRegistryClient; a fake in tests)."""

    def get_schema(self, schema_id: int) -> Schema:
        """The schema registered under `schema_id`; SchemaRegistryError if the registry says no."""
        ...

    def get_subjects(self) -> list[str]:
        """Every subject: the cheap call that proves the base URL is a working registry."""
        ...


class BadSchemaError(ValueError):
    """The message names a schema id it cannot be read with: a verdict on the message."""

    kind = "schema"


class UnknownSchemaError(BadSchemaError):
    """The registry says the id was never issued."""

    kind = "unknown-schema"


class UnsupportedSchemaError(BadSchemaError):
    """The id exists but is not an Avro schema this writer can parse."""

    kind = "unsupported-schema"


class RegistryUnavailableError(RuntimeError):
    """The registry could not answer; nothing is known about the message yet."""


class WriterSchemas:
    """Parsed writer schemas by id, each fetched from the registry once.

    A schema identical to the shipped TradeV2 maps to the codec's own parsed schema, so decoding
    takes the codec's fast path (no schema resolution).
    """

    def __init__(
        self,
        registry: SchemaFetcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        unknown_ttl_s: float = UNKNOWN_ID_TTL_S,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._unknown_ttl_s = unknown_ttl_s
        self._parsed: dict[int, ParsedSchema] = {}
        self._bad: dict[int, tuple[float, BadSchemaError]] = {}
        self._reader = parsed_trade_v2_schema()
        self._reader_json = trade_v2_schema()

    def get(self, schema_id: int) -> ParsedSchema:
        """The parsed writer schema of `schema_id`; BadSchemaError or RegistryUnavailableError."""
        parsed = self._parsed.get(schema_id)
        if parsed is not None:
            return parsed
        return self._fetch(schema_id)

    def _fetch(self, schema_id: int) -> ParsedSchema:
        now = self._clock()
        bad = self._bad.get(schema_id)
        if bad is not None and bad[0] > now:
            raise bad[1]
        try:
            schema = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404 and (
                exc.error_code == SCHEMA_NOT_FOUND or self._answers()
            ):
                raise self._remember_bad(
                    schema_id, now, UnknownSchemaError(f"schema id {schema_id} is unknown: {exc}")
                ) from None
            raise RegistryUnavailableError(
                f"schema registry failed to return schema id {schema_id}: {exc}"
            ) from exc
        except Exception as exc:  # any transport failure is the registry's, not the message's
            raise RegistryUnavailableError(
                f"schema registry unreachable fetching schema id {schema_id}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            parsed = self._parse(schema)
        except UnsupportedSchemaError as exc:
            raise self._remember_bad(schema_id, now, exc, forever=True) from None
        self._parsed[schema_id] = parsed
        self._bad.pop(schema_id, None)
        return parsed

    def _answers(self) -> bool:
        """Whether the registry answers a request that cannot 404 on a working registry."""
        try:
            self._registry.get_subjects()
        except Exception:  # any failure means the 404 cannot be trusted as a verdict
            return False
        return True

    def _remember_bad(
        self, schema_id: int, now: float, error: BadSchemaError, *, forever: bool = False
    ) -> BadSchemaError:
        # A flood of messages naming one bad id costs one registry request, not one each.
        expires = float("inf") if forever else now + self._unknown_ttl_s
        self._bad[schema_id] = (expires, error)
        return error

    def _parse(self, schema: Schema) -> ParsedSchema:
        kind = schema.schema_type or "AVRO"
        if kind.upper() != "AVRO" or not schema.schema_str:
            raise UnsupportedSchemaError(f"schema is {kind}, not AVRO")
        try:
            document: Any = json.loads(schema.schema_str)
        except ValueError as exc:
            raise UnsupportedSchemaError(f"schema text is not JSON: {exc}") from None
        if document == self._reader_json:
            return self._reader
        try:
            parsed: ParsedSchema = fastavro.parse_schema(document)
        except Exception as exc:  # fastavro reports a bad schema in several exception types
            raise UnsupportedSchemaError(
                f"schema does not parse as Avro: {type(exc).__name__}: {exc}"
            ) from None
        return parsed
