"""The read contract between the HTTP layer and the trade store, and what it returns.

Routes depend on `TradeRepository` only, so unit tests run the real routes over an in-memory
repository and production runs them over Iceberg. Methods are async: an implementation that
blocks (pyiceberg does) must move the work off the event loop itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

import pyarrow as pa

from k2.api.query import PageRequest, TradeFilter


class RepositoryUnavailableError(RuntimeError):
    """The store cannot answer now (catalog down, table missing, storage refused): a 503."""


@dataclass(frozen=True, slots=True)
class TradePage:
    """One page of trades, newest first, and how many trades matched in all.

    `rows` is an Arrow table with the TradeV2 columns (`compute.TRADE_COLUMNS`). `timings`
    names the phases the repository spent time in (milliseconds), for the Server-Timing
    header: where a slow request went, visible from any client.
    """

    rows: pa.Table
    total: int
    timings: Mapping[str, float] = field(default_factory=dict)
    snapshot_id: int | None = None
    """The table snapshot the page was read from (None: an empty table or not Iceberg)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DaySummary:
    """OHLCV of one symbol over one UTC day; prices exact, vwap rounded to 8 places.

    `vwap` is None only when the day's volume is zero (no price can be weighted).
    """

    symbol: str
    day: date
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal | None
    trade_count: int
    first_trade: datetime
    last_trade: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TableStats:
    """Size and freshness of the trades table at its current snapshot (None when empty)."""

    row_count: int
    symbol_count: int
    latest_trade: datetime | None
    snapshot_id: int | None
    snapshot_time: datetime | None
    data_file_count: int | None


@dataclass(frozen=True, slots=True)
class Readiness:
    """A successful readiness probe: the table loaded, at this snapshot (None when empty)."""

    snapshot_id: int | None


class TradeRepository(Protocol):
    """Reads trades; every method raises RepositoryUnavailableError when the store is down."""

    async def trades(self, where: TradeFilter, page: PageRequest) -> TradePage:
        """The page of matching trades, ordered by (timestamp, message_id) descending."""
        ...

    async def symbols(self) -> list[str]:
        """Every distinct symbol, sorted."""
        ...

    async def day_summary(self, symbol: str, day: date) -> DaySummary | None:
        """The OHLCV summary of `symbol` over UTC `day`, or None when it had no trades."""
        ...

    async def stats(self) -> TableStats:
        """Size and freshness of the table."""
        ...

    async def readiness(self) -> Readiness:
        """Prove the store can answer a query now; raise RepositoryUnavailableError if not."""
        ...

    def readiness_step(self) -> str | None:
        """What a readiness probe still running is waiting for (None: nothing).

        A probe cut off by its timeout names it in its reason.
        """
        ...

    def catalog_loads(self) -> int | None:
        """Table loads through the catalog so far (None: this store has no catalog)."""
        ...
