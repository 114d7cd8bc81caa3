"""TradeRepository over `market_data.trades`, read through the REST catalog.

Every call reads the table metadata through the catalog, shared between requests: one load at
most every `table_max_age_s` (see `shared_table`), so a commit is visible to every request
that starts that long after it; no metadata file is ever guessed. Rows then come from the
in-memory replica (see `replica`) when it is on, else from a pyiceberg scan with the filters
pushed down (partition pruning on day(timestamp), then symbol and timestamp min/max metrics)
and only the needed columns projected. Either way the Arrow work is `compute`'s; a symbol's
trades come from the replica's symbol index, so they cost what that symbol holds, not the
whole table.

A background follower (`follow`) brings the replica to the latest commit. With the writer's
commit notices (see `commit_listener`) it loads the table through the catalog once per
commit, as soon as the notice arrives, and otherwise once a second; without them (no Kafka
given, or Kafka failing) every `table_max_age_s` while requests arrive, once a second when
idle. While it keeps up, a `/v1/trades` request answers from its latest view, touching
neither the catalog nor the storage, so a polling client costs the API a few milliseconds a
request and the catalog nothing per request. A request that finds the follower behind
(idle, or failing) loads and refreshes itself, as every request once did, so a commit is
never served late by more than about `table_max_age_s` plus one refresh (one refresh, with
notices).

pyiceberg blocks, so every call runs in a worker thread; a capacity limiter keeps concurrent
reads from oversubscribing a two-core machine, and the readiness probe has its own limiter so
it is never queued behind slow scans.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, ParamSpec, TypeVar

import anyio
import pyarrow as pa
import requests
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError, RESTError
from pyiceberg.table import Table

from k2.api import compute
from k2.api.commit_listener import CommitListener
from k2.api.filters import iceberg_row_filter
from k2.api.query import PageRequest, TradeFilter, utc_day_window
from k2.api.replica import DEFAULT_MAX_ROWS, ReplicaView, TradeReplica
from k2.api.repository import (
    DaySummary,
    Readiness,
    RepositoryUnavailableError,
    TableStats,
    TradePage,
)
from k2.api.shared_table import DEFAULT_MAX_AGE_S, SharedTable
from k2.api.symbol_index import SymbolIndex, symbol_page
from k2.model.names import ICEBERG_TABLE

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

FOLLOW_INTERVAL_S: Final = 1.0
"""How often the background follower brings the replica up to date while nobody asks."""
BUSY_WINDOW_S: Final = 5.0
"""After a request, the follower keeps up every `table_max_age_s` for this long."""

QUERY_CONCURRENCY: Final = 4
"""Reads at once: enough to overlap catalog and S3 waits, few enough for two cores."""

_UNAVAILABLE: Final = (RESTError, requests.RequestException, OSError)


@dataclass(frozen=True, slots=True)
class _Source:
    """Rows to answer from, the part of the filter they do not reflect yet, and their index.

    `index` is the replica's (None for scanned rows).
    """

    rows: pa.Table
    still_to_apply: TradeFilter
    index: SymbolIndex | None = None
    snapshot_id: int | None = None


class IcebergTradeRepository:
    """Reads trades from Iceberg; `catalog_factory` connects (it is retried until it works)."""

    def __init__(
        self,
        catalog_factory: Callable[[], Catalog],
        *,
        replica_max_rows: int = DEFAULT_MAX_ROWS,
        table_name: str = ICEBERG_TABLE,
        table_max_age_s: float = DEFAULT_MAX_AGE_S,
        notices: CommitListener | None = None,
    ) -> None:
        self._catalog_factory = catalog_factory
        self._notices = notices
        self._catalog: Catalog | None = None
        self._catalog_lock = threading.Lock()
        self._table_name = table_name
        self._replica = TradeReplica(replica_max_rows)
        self._table = SharedTable(self._load_from_catalog, table_max_age_s)
        self._max_age_s = table_max_age_s
        self._followed_at: float | None = None
        self._step: str | None = None
        self._last_request = float("-inf")
        self._queries = anyio.CapacityLimiter(QUERY_CONCURRENCY)
        self._probes = anyio.CapacityLimiter(2)

    @property
    def replica(self) -> TradeReplica:
        """The in-memory replica (for its counters and state)."""
        return self._replica

    # -- plumbing ------------------------------------------------------------------------

    async def _run(self, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        def call() -> R:
            return func(*args, **kwargs)

        return await anyio.to_thread.run_sync(call, limiter=self._queries)

    def _connected(self) -> Catalog:
        # Lazy, so the API starts (and says 503) while the catalog is still down.
        with self._catalog_lock:
            if self._catalog is None:
                self._catalog = self._catalog_factory()
            return self._catalog

    def catalog_loads(self) -> int | None:
        """See TradeRepository.catalog_loads."""
        return self._table.loads

    def _load(self) -> Table:
        """The table's metadata as of at most `table_max_age_s` ago, shared by all requests."""
        return self._table.current()

    def _load_from_catalog(self) -> Table:
        """The table at its latest committed metadata, or RepositoryUnavailableError."""
        try:
            return self._connected().load_table(self._table_name)
        except (NoSuchTableError, NoSuchNamespaceError):
            raise RepositoryUnavailableError(
                f"table {self._table_name} does not exist (yet): the consumer creates it"
            ) from None
        except _UNAVAILABLE as exc:
            raise RepositoryUnavailableError(
                f"catalog unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    def _source(self, table: Table, where: TradeFilter, columns: Sequence[str]) -> _Source:
        """Rows holding at least the matches of `where`, from the replica or a pushdown scan.

        Replica rows are the whole table (the caller filters them in memory); scanned rows
        are exactly the matches, with `columns` only.
        """
        try:
            view = self._replica.view(table)
            if view is not None:
                return _Source(view.rows, where, view.index, view.snapshot_id)
            scan = table.scan(row_filter=iceberg_row_filter(where), selected_fields=tuple(columns))
            snapshot = table.current_snapshot()
            return _Source(
                scan.to_arrow().select(list(columns)),
                TradeFilter(),
                snapshot_id=snapshot.snapshot_id if snapshot is not None else None,
            )
        except _UNAVAILABLE as exc:
            raise RepositoryUnavailableError(
                f"reading {self._table_name} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _rows(self, table: Table, where: TradeFilter, columns: Sequence[str]) -> pa.Table:
        """`columns` of the rows `where` selects."""
        source = self._source(table, where, columns)
        return compute.select_matching(source.rows, source.still_to_apply, columns)

    # -- TradeRepository -----------------------------------------------------------------

    async def trades(self, where: TradeFilter, page: PageRequest) -> TradePage:
        """See TradeRepository.trades."""
        return await self._run(self._trades, where, page, time.perf_counter())

    def _followed_view(self) -> ReplicaView | None:
        """The follower's latest view if it refreshed recently enough to be served as is.

        With live notices the follower refreshes at each commit, so its view is current
        while its fallback timer keeps it from falling silent; without, only while it
        refreshed within about `table_max_age_s`.
        """
        self._last_request = time.monotonic()
        followed = self._followed_at
        notified = self._notices is not None and self._notices.live
        limit = 2 * (FOLLOW_INTERVAL_S if notified else self._max_age_s)
        if followed is None or time.monotonic() - followed > limit:
            return None
        return self._replica.latest

    def _trades(self, where: TradeFilter, page: PageRequest, asked: float) -> TradePage:
        """A page; `asked` is when the request asked for a worker (its wait is a phase too)."""
        began = time.perf_counter()
        view = self._followed_view()
        if view is not None:
            loaded = refreshed = time.perf_counter()
            source = _Source(view.rows, where, view.index, view.snapshot_id)
        else:
            table = self._load()
            loaded = time.perf_counter()
            source = self._source(table, where, compute.TRADE_COLUMNS)
            refreshed = time.perf_counter()
        if source.index is not None and source.still_to_apply.symbol is not None:
            rows, total = symbol_page(source.index, page, source.still_to_apply)
        else:
            rows, total = compute.newest_first_page(source.rows, page, source.still_to_apply)
        done = time.perf_counter()
        timings = {
            "queue": (began - asked) * 1000,
            "catalog": (loaded - began) * 1000,
            "read": (refreshed - loaded) * 1000,
            "page": (done - refreshed) * 1000,
        }
        return TradePage(
            rows.select(list(compute.TRADE_COLUMNS)), total, timings, source.snapshot_id
        )

    async def symbols(self) -> list[str]:
        """See TradeRepository.symbols."""
        return await self._run(self._symbols)

    def _symbols(self) -> list[str]:
        return compute.distinct_symbols(self._rows(self._load(), TradeFilter(), ["symbol"]))

    async def day_summary(self, symbol: str, day: date) -> DaySummary | None:
        """See TradeRepository.day_summary."""
        return await self._run(self._day_summary, symbol, day)

    def _day_summary(self, symbol: str, day: date) -> DaySummary | None:
        start, end = utc_day_window(day)
        where = TradeFilter(symbol=symbol, start=start, end=end)
        rows = self._rows(self._load(), where, compute.SUMMARY_COLUMNS)
        return compute.day_summary(rows, symbol, day)

    async def stats(self) -> TableStats:
        """See TradeRepository.stats."""
        return await self._run(self._stats)

    def _stats(self) -> TableStats:
        table = self._load()
        rows = self._rows(table, TradeFilter(), compute.STATS_COLUMNS)
        snapshot = table.current_snapshot()
        files = snapshot.summary["total-data-files"] if snapshot and snapshot.summary else None
        return TableStats(
            row_count=rows.num_rows,
            symbol_count=len(compute.distinct_symbols(rows)),
            latest_trade=compute.latest_timestamp(rows),
            snapshot_id=snapshot.snapshot_id if snapshot else None,
            snapshot_time=(
                datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC) if snapshot else None
            ),
            data_file_count=int(files) if files is not None else None,
        )

    async def readiness(self) -> Readiness:
        """Load the table through the catalog, check the storage, bring the in-memory copy current.

        The storage step costs one small HEAD request and catches an API whose own S3 settings
        are wrong while the catalog (which has its own) answers fine. The copy step makes ready
        mean "/v1/trades answers now": while the first copy is read (after a restart), the
        answer is not-ready saying so; afterwards it is usually current already (the follower
        refreshes it every second).
        """
        return await anyio.to_thread.run_sync(
            self._readiness, limiter=self._probes, abandon_on_cancel=True
        )

    def readiness_step(self) -> str | None:
        """See TradeRepository.readiness_step."""
        return self._step

    def _readiness(self) -> Readiness:
        """Ready: the table loads, its storage answers, and the in-memory copy is current."""
        try:
            return self._readiness_steps()
        finally:
            self._step = None

    def _readiness_steps(self) -> Readiness:
        self._step = f"the catalog to load {self._table_name}"
        table = self._load()
        snapshot = table.current_snapshot()
        if snapshot is None:
            return Readiness(None)
        if self._replica.filling:
            # Ready means /v1/trades answers now; after a restart of a big table it would wait
            # for the first copy (measured: 20 s at 525k rows while /health already said 200).
            raise RepositoryUnavailableError(
                "reading the table into memory: /v1/trades would wait for the first copy"
            )
        self._step = "the storage to answer for the manifest list"
        try:
            present = table.io.new_input(snapshot.manifest_list).exists()
        except _UNAVAILABLE as exc:
            raise RepositoryUnavailableError(
                f"storage unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if not present:
            raise RepositoryUnavailableError(
                f"storage has no manifest list {snapshot.manifest_list}"
            )
        self._step = "the in-memory copy to reach the table's snapshot"
        try:
            self._replica.view(table)  # current already, or brought to the snapshot now
        except _UNAVAILABLE as exc:
            raise RepositoryUnavailableError(
                f"reading {self._table_name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        return Readiness(snapshot.snapshot_id)

    def follow(self, stop: threading.Event, interval: float = FOLLOW_INTERVAL_S) -> None:
        """Keep the replica current until `stop` is set (blocking: run it in a thread).

        At each commit notice, and every `interval` besides, while notices are live; without
        them every `table_max_age_s` while requests arrive (they are then served from its
        view), every `interval` otherwise. It also fills the replica at start instead of on
        the first request.
        """
        notices = self._notices
        if notices is not None:
            threading.Thread(
                target=notices.run, args=(stop,), name="k2-api-notices", daemon=True
            ).start()
        notified = False
        last_problem: str | None = None
        while not stop.is_set() and self._replica.off_reason is None:
            problem = None
            try:
                # A notice says a commit landed: load now, not when the shared load expires.
                self._replica.view(self._table.reload() if notified else self._load())
                self._followed_at = time.monotonic()
            except RepositoryUnavailableError as exc:
                problem = str(exc)
            except Exception as exc:  # keep following; the next request will surface it
                problem = f"{type(exc).__name__}: {exc}"
            if problem != last_problem:  # log changes, not one line a second while down
                if problem is None:
                    log.info("replica following the table again")
                else:
                    log.warning("replica not refreshed: %s", problem)
                last_problem = problem
            if notices is not None and notices.live:
                timeout = interval
            else:
                busy = time.monotonic() - self._last_request < BUSY_WINDOW_S
                timeout = self._max_age_s if busy else interval
            if notices is None:
                stop.wait(timeout)
            else:  # A notice wakes it early; the listener's end (at `stop`) wakes it too.
                notified = notices.wait(timeout)
