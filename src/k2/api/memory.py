"""An in-memory TradeRepository over one Arrow table: for unit tests and local demos only.

It runs the same `compute` functions as the Iceberg repository, so a route tested here is
tested for production up to the scan itself. `fail_with` makes every call fail as an
unreachable catalog would.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from k2.api import compute
from k2.api.query import PageRequest, TradeFilter, utc_day_window
from k2.api.repository import (
    DaySummary,
    Readiness,
    RepositoryUnavailableError,
    TableStats,
    TradePage,
)
from k2.model.trade import Trade

_TEXT = pa.large_string()
TRADES_ARROW_SCHEMA = pa.schema(
    [
        pa.field("message_id", _TEXT, nullable=False),
        pa.field("trade_id", _TEXT, nullable=False),
        pa.field("symbol", _TEXT, nullable=False),
        pa.field("exchange", _TEXT, nullable=False),
        pa.field("asset_class", _TEXT, nullable=False),
        pa.field("timestamp", pa.timestamp("us", "UTC"), nullable=False),
        pa.field("price", pa.decimal128(18, 8), nullable=False),
        pa.field("quantity", pa.decimal128(18, 8), nullable=False),
        pa.field("currency", _TEXT, nullable=False),
        pa.field("side", _TEXT, nullable=False),
        pa.field(
            "trade_conditions",
            pa.large_list(pa.field("element", _TEXT, nullable=False)),
            nullable=False,
        ),
        pa.field("source_sequence", pa.int64()),
        pa.field("ingestion_timestamp", pa.timestamp("us", "UTC"), nullable=False),
        pa.field("platform_sequence", pa.int64()),
        pa.field("vendor_data", pa.map_(_TEXT, pa.field("value", _TEXT, nullable=False))),
    ]
)
"""The TradeV2 columns as a pyiceberg scan of market_data.trades returns them."""


def trades_table(trades: Iterable[Trade]) -> pa.Table:
    """An Arrow table of `trades` with TRADES_ARROW_SCHEMA."""
    records: list[dict[str, Any]] = []
    for trade in trades:
        record = trade.to_avro_dict()
        record["timestamp"] = trade.timestamp
        record["ingestion_timestamp"] = trade.ingestion_timestamp
        if record["vendor_data"] is not None:
            record["vendor_data"] = list(record["vendor_data"].items())
        records.append(record)
    return pa.Table.from_pylist(records, schema=TRADES_ARROW_SCHEMA)


class InMemoryTradeRepository:
    """A TradeRepository over a fixed Arrow table; `snapshot_id` stands in for Iceberg's."""

    def __init__(self, rows: pa.Table | None = None, *, snapshot_id: int | None = 1) -> None:
        self.rows = rows if rows is not None else TRADES_ARROW_SCHEMA.empty_table()
        self.snapshot_id = snapshot_id if self.rows.num_rows else None
        self.snapshot_time = datetime.now(UTC) if self.rows.num_rows else None
        self.fail_with: str | None = None
        self.calls = 0

    @classmethod
    def of(cls, trades: Iterable[Trade]) -> InMemoryTradeRepository:
        """A repository holding `trades`."""
        return cls(trades_table(trades))

    def _check(self) -> None:
        self.calls += 1
        if self.fail_with is not None:
            raise RepositoryUnavailableError(self.fail_with)

    async def trades(self, where: TradeFilter, page: PageRequest) -> TradePage:
        """See TradeRepository.trades."""
        self._check()
        rows, total = compute.newest_first_page(self.rows, page, where)
        return TradePage(rows, total, snapshot_id=self.snapshot_id)

    async def symbols(self) -> list[str]:
        """See TradeRepository.symbols."""
        self._check()
        return compute.distinct_symbols(self.rows)

    async def day_summary(self, symbol: str, day: date) -> DaySummary | None:
        """See TradeRepository.day_summary."""
        self._check()
        start, end = utc_day_window(day)
        where = TradeFilter(symbol=symbol, start=start, end=end)
        rows = compute.select_matching(self.rows, where, compute.SUMMARY_COLUMNS)
        return compute.day_summary(rows, symbol, day)

    async def stats(self) -> TableStats:
        """See TradeRepository.stats."""
        self._check()
        return TableStats(
            row_count=self.rows.num_rows,
            symbol_count=len(compute.distinct_symbols(self.rows)),
            latest_trade=compute.latest_timestamp(self.rows),
            snapshot_id=self.snapshot_id,
            snapshot_time=self.snapshot_time,
            data_file_count=1 if self.rows.num_rows else 0,
        )

    def catalog_loads(self) -> int | None:
        """No catalog here."""
        return None

    async def readiness(self) -> Readiness:
        """See TradeRepository.readiness."""
        self._check()
        return Readiness(self.snapshot_id)

    def readiness_step(self) -> str | None:
        """See TradeRepository.readiness_step: nothing to wait for in memory."""
        return None
