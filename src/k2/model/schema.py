"""The TradeV2 Avro schema, read once from the `trade_v2.avsc` shipped inside the package.

The .avsc file is the single source: the producer registers its text, the codec parses it,
and the Iceberg table is derived from the same fields.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Final

import fastavro
from fastavro.types import Schema

SCHEMA_FILE: Final = "trade_v2.avsc"


@cache
def trade_v2_schema_str() -> str:
    """The schema's text as shipped: what the producer registers under `{topic}-value`.

    Stripped, as AvroSerializer strips it, so both register byte-identical text and a registry
    comparing text literally still hands both the same id.
    """
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8").strip()


def trade_v2_schema() -> dict[str, Any]:
    """The schema as a fresh JSON dict (a copy: callers may change it)."""
    schema: dict[str, Any] = json.loads(trade_v2_schema_str())
    return schema


@cache
def parsed_trade_v2_schema() -> Schema:
    """The schema parsed by fastavro, the form its readers and writers take (parsed once)."""
    return fastavro.parse_schema(trade_v2_schema())


@cache
def trade_v2_field_names() -> tuple[str, ...]:
    """TradeV2's field names in schema order: the one list every reader of a trade uses."""
    return tuple(field["name"] for field in trade_v2_schema()["fields"])
