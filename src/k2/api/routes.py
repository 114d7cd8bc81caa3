"""The /v1 endpoints: parse and check parameters, ask the repository, wrap in the envelope.

Handlers are async and never touch pyiceberg themselves; the repository does its blocking
work in worker threads. `/v1/trades` builds its JSON directly (up to 10 000 rows would cost
more to validate through pydantic than to query); its shape is still documented by
TradesResponse and checked against it by the unit tests. It also answers with a
Server-Timing header (catalog load, read, paging, serialisation, in ms), so a slow request
shows any client where its time went, and with `X-K2-Snapshot-Id`, the table snapshot it
read: answers only ever move forward, so a client that sees a new id knows that every trade
of that snapshot is served from then on (the E2E watch times visibility by it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from k2.api.auth import ApiKeyCheck
from k2.api.correlation import correlation_id
from k2.api.errors import ApiError
from k2.api.models import (
    DaySummaryOut,
    ErrorResponse,
    Meta,
    StatsOut,
    StatsResponse,
    SummaryResponse,
    SymbolsResponse,
    TradesResponse,
)
from k2.api.query import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageRequest,
    TradeFilter,
    parse_code,
    parse_day,
    parse_instant,
)
from k2.api.repository import TradeRepository
from k2.api.serialize import format_instant, format_price, trade_records
from k2.model.names import ICEBERG_TABLE

_TIME_HELP: Final = (
    "ISO 8601 with a timezone (`Z` or an offset), e.g. `2026-01-01T00:00:00Z`; inclusive. "
    "A timestamp without a timezone is refused with 422, never assumed to be UTC."
)
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorResponse, "description": "No X-API-Key header"},
    403: {"model": ErrorResponse, "description": "Wrong X-API-Key"},
    422: {"model": ErrorResponse, "description": "A parameter is invalid"},
    503: {"model": ErrorResponse, "description": "The catalog or the table is unavailable"},
}


SNAPSHOT_HEADER: Final = "X-K2-Snapshot-Id"


def meta(request: Request) -> Meta:
    """The envelope's meta object for this request, stamped now."""
    return Meta(correlation_id=correlation_id(request), timestamp=format_instant(datetime.now(UTC)))


def server_timing(timings: Mapping[str, float]) -> str:
    """A Server-Timing header value: `name;dur=ms` per phase, in the order given."""
    return ", ".join(f"{name};dur={ms:.1f}" for name, ms in timings.items())


def build_router(repository: TradeRepository, api_key: ApiKeyCheck) -> APIRouter:
    """The /v1 router over `repository`, every route behind the `api_key` dependency."""
    router = APIRouter(prefix="/v1", dependencies=[Depends(api_key)], responses=_ERRORS)

    @router.get(
        "/trades",
        response_model=TradesResponse,
        summary="Trades, newest first",
        description=(
            "Trades matching every given filter, ordered by timestamp then message_id, both "
            "descending, paged with limit and offset. `pagination.total` counts all matches. "
            "Each request reads the table's latest snapshot; to page through a fixed set "
            "while trades keep arriving, pass `end_time`."
        ),
    )
    async def list_trades(
        request: Request,
        symbol: Annotated[
            str | None, Query(description="e.g. BTCUSDT (case-insensitive)", max_length=32)
        ] = None,
        exchange: Annotated[
            str | None, Query(description="e.g. BINANCE (case-insensitive)", max_length=32)
        ] = None,
        start_time: Annotated[
            str | None,
            Query(
                description=f"Earliest trade time. {_TIME_HELP}",
                max_length=64,
                examples=["2026-01-01T00:00:00Z"],
            ),
        ] = None,
        end_time: Annotated[
            str | None,
            Query(
                description=f"Latest trade time. {_TIME_HELP}",
                max_length=64,
                examples=["2026-01-01T23:59:59.999999+00:00"],
            ),
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}")
        ] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, description="Trades to skip")] = 0,
    ) -> Response:
        where = TradeFilter(
            symbol=parse_code("symbol", symbol),
            exchange=parse_code("exchange", exchange),
            start=parse_instant("start_time", start_time),
            end=parse_instant("end_time", end_time),
        )
        page = PageRequest(limit, offset)
        arrived = time.perf_counter()
        result = await repository.trades(where, page)
        envelope = meta(request).model_dump()

        def render() -> tuple[bytes, float]:
            began = time.perf_counter()
            data = trade_records(result.rows)
            body = {
                "success": True,
                "meta": envelope,
                "data": data,
                "pagination": {
                    "limit": page.limit,
                    "offset": page.offset,
                    "total": result.total,
                    "has_more": page.offset + len(data) < result.total,
                },
            }
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            return payload, (time.perf_counter() - began) * 1000

        # Off the event loop: a page of 1000 trades is milliseconds of CPU, during which the
        # loop could accept no request and answer no health probe (a queue no timing showed).
        payload, serialize_ms = await anyio.to_thread.run_sync(render)
        timings = {
            **result.timings,
            "serialize": serialize_ms,
            "total": (time.perf_counter() - arrived) * 1000,
        }
        return Response(
            payload,
            media_type="application/json",
            headers={
                "Server-Timing": server_timing(timings),
                **(
                    {SNAPSHOT_HEADER: str(result.snapshot_id)}
                    if result.snapshot_id is not None
                    else {}
                ),
            },
        )

    @router.get(
        "/symbols",
        response_model=SymbolsResponse,
        summary="Symbols with trades",
        description="Every distinct symbol in the table, sorted.",
    )
    async def list_symbols(request: Request) -> SymbolsResponse:
        symbols = await repository.symbols()
        return SymbolsResponse(success=True, meta=meta(request), data=symbols)

    @router.get(
        "/summary/{symbol}/{date}",
        response_model=SummaryResponse,
        summary="OHLCV of one symbol over one UTC day",
        description=(
            "Open and close are the prices of the day's first and last trade (by timestamp, "
            "then message_id), high and low the extremes, volume the exact sum of quantities, "
            "vwap sum(price * quantity) / volume rounded half-even to 8 places. "
            "404 when the symbol had no trades that day."
        ),
        responses={404: {"model": ErrorResponse, "description": "No trades that day"}},
    )
    async def day_summary(
        request: Request,
        symbol: Annotated[str, Path(description="e.g. BTCUSDT (case-insensitive)")],
        date: Annotated[
            str,
            Path(description="UTC day, YYYY-MM-DD", examples=["2026-01-01"]),
        ],
    ) -> SummaryResponse:
        code = parse_code("symbol", symbol, "path")
        assert code is not None
        day = parse_day("date", date)
        summary = await repository.day_summary(code, day)
        if summary is None:
            raise ApiError(404, "not_found", f"no {code} trades on {day.isoformat()} (UTC)")
        out = DaySummaryOut(
            symbol=summary.symbol,
            date=summary.day,
            open=format_price(summary.open),
            high=format_price(summary.high),
            low=format_price(summary.low),
            close=format_price(summary.close),
            volume=format_price(summary.volume),
            vwap=None if summary.vwap is None else format_price(summary.vwap),
            trade_count=summary.trade_count,
            first_trade_timestamp=format_instant(summary.first_trade),
            last_trade_timestamp=format_instant(summary.last_trade),
        )
        return SummaryResponse(success=True, meta=meta(request), data=out)

    @router.get(
        "/stats",
        response_model=StatsResponse,
        summary="Table size and freshness",
        description="Row and symbol counts, the newest trade and the current snapshot.",
    )
    async def table_stats(request: Request) -> StatsResponse:
        stats = await repository.stats()
        out = StatsOut(
            table=ICEBERG_TABLE,
            row_count=stats.row_count,
            symbol_count=stats.symbol_count,
            latest_trade_timestamp=(
                format_instant(stats.latest_trade) if stats.latest_trade else None
            ),
            snapshot_id=stats.snapshot_id,
            snapshot_timestamp=(
                format_instant(stats.snapshot_time) if stats.snapshot_time else None
            ),
            data_file_count=stats.data_file_count,
        )
        return StatsResponse(success=True, meta=meta(request), data=out)

    return router
