"""The JSON the API answers with, as pydantic models: the OpenAPI schema and the test oracle.

Every answer is an envelope: `success`, `meta` (correlation id and answer time), then `data`
(and `pagination` for lists of trades) on success or `error` on failure. Decimals are strings
with exactly 8 places and timestamps ISO 8601 UTC with microseconds and `Z`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from k2.model.trade import AssetClass, Side

DECIMAL_PATTERN = r"^-?\d+\.\d{8}$"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"

DecimalText = Annotated[
    str,
    Field(
        pattern=DECIMAL_PATTERN,
        description="decimal(18,8) as text with exactly 8 decimal places (never a float)",
        examples=["43251.12345678"],
    ),
]
Timestamp = Annotated[
    str,
    Field(
        pattern=TIMESTAMP_PATTERN,
        description="ISO 8601 in UTC with microseconds and Z",
        examples=["2026-01-01T00:00:00.123456Z"],
        json_schema_extra={"format": "date-time"},
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Meta(_Model):
    """Who asked and when the API answered."""

    correlation_id: str = Field(
        description="The request's X-Correlation-ID header if it was valid, else a new uuid4; "
        "also echoed as the X-Correlation-ID response header"
    )
    timestamp: Timestamp


class Pagination(_Model):
    """Where this page sits in the whole newest-first result."""

    limit: int = Field(ge=1, le=10_000)
    offset: int = Field(ge=0)
    total: int = Field(ge=0, description="Trades matching the filters, over all pages")
    has_more: bool = Field(description="Whether rows exist after this page (offset + len(data))")


class TradeOut(_Model):
    """One TradeV2 record."""

    message_id: str = Field(description="uuid5 of symbol and trade_id: stable across replays")
    trade_id: str = Field(examples=["BINANCE-123456"])
    symbol: str = Field(examples=["BTCUSDT"])
    exchange: str = Field(examples=["BINANCE"])
    asset_class: AssetClass
    timestamp: Timestamp
    price: DecimalText
    quantity: DecimalText
    currency: str = Field(examples=["USDT"], description="Quote currency")
    side: Side = Field(description="The aggressor's side")
    trade_conditions: list[str]
    source_sequence: int | None
    ingestion_timestamp: Timestamp
    platform_sequence: int | None
    vendor_data: dict[str, str] | None = Field(description="The venue's raw fields, as text")


class TradesResponse(_Model):
    """A page of trades, newest first (timestamp, then message_id, both descending)."""

    success: Literal[True]
    meta: Meta
    data: list[TradeOut]
    pagination: Pagination


class SymbolsResponse(_Model):
    """Every symbol with at least one trade, sorted."""

    success: Literal[True]
    meta: Meta
    data: list[str]


class DaySummaryOut(_Model):
    """OHLCV of one symbol over one UTC day."""

    symbol: str
    date: dt.date
    open: DecimalText = Field(description="Price of the day's first trade")
    high: DecimalText
    low: DecimalText
    close: DecimalText = Field(description="Price of the day's last trade")
    volume: DecimalText = Field(description="Sum of quantities, exact")
    vwap: DecimalText | None = Field(
        description="sum(price * quantity) / volume, rounded half-even to 8 places; "
        "null only when volume is zero"
    )
    trade_count: int = Field(ge=1)
    first_trade_timestamp: Timestamp
    last_trade_timestamp: Timestamp


class SummaryResponse(_Model):
    """A day summary."""

    success: Literal[True]
    meta: Meta
    data: DaySummaryOut


class StatsOut(_Model):
    """Size and freshness of market_data.trades at its current snapshot."""

    table: str = Field(examples=["market_data.trades"])
    row_count: int = Field(ge=0)
    symbol_count: int = Field(ge=0)
    latest_trade_timestamp: Timestamp | None
    snapshot_id: int | None = Field(description="Current Iceberg snapshot; null while empty")
    snapshot_timestamp: Timestamp | None = Field(description="When that snapshot was committed")
    data_file_count: int | None = Field(
        description="Live data files (from the snapshot summary), a measure of small files"
    )


class StatsResponse(_Model):
    """Table statistics."""

    success: Literal[True]
    meta: Meta
    data: StatsOut


class HealthResponse(_Model):
    """Readiness: 200 when the catalog answers and the table loads, else 503 with a reason."""

    status: Literal["ok", "unavailable"]
    reason: str | None = Field(description="Why the API is not ready; null when ok")
    snapshot_id: int | None = Field(description="The table's current snapshot when checked")
    checked_at: Timestamp
    catalog_loads: int | None = Field(
        default=None,
        description="Table loads through the catalog since start (requests share them)",
    )


class ErrorDetail(_Model):
    """One problem with the request."""

    location: str = Field(examples=["query.limit"])
    message: str


class ErrorInfo(_Model):
    """What went wrong, for people and for programs."""

    code: str = Field(
        examples=["validation_error"],
        description="validation_error, missing_api_key, invalid_api_key, not_found, "
        "method_not_allowed, unavailable or internal_error",
    )
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(_Model):
    """Every non-2xx answer except /health's 503."""

    success: Literal[False]
    meta: Meta
    error: ErrorInfo
