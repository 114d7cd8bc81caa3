"""Watch the running pipeline while a feed runs: when trades became visible, and each commit.

Two background threads observe, so the timing does not depend on when a test looks:

- the API poller asks k2-query-api for one watched symbol's `pagination.total` every 60 ms,
  in turn. Every answer names the table snapshot it was read from, and the API's answers only
  move forward, so the first answer showing a snapshot dates every symbol's total at that
  snapshot: when one appears, the poller asks the other symbols at once and dates their
  totals by it. Visibility is so timed to one request interval (not four) at a quarter of the
  requests, which is what the observer costs the API;
- the catalog poller loads `market_data.trades` through the REST catalog and records every
  new snapshot's commit time and the Kafka offsets its summary says it holds.

Both only read what the real services expose; nothing is estimated. The records feed the
performance monitor, which turns them into per-trade hop times.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import httpx
from pyiceberg.table import Table

from k2.consumer.offsets import OffsetsCorruptError, snapshot_offsets
from k2.model import TOPIC
from tests.e2e.utils.hops import api_total_at
from tests.e2e.utils.polling import poll_until

API_INTERVAL_S: Final = 0.06
"""Pause between two API polls: visibility is timed to about this (plus a request)."""
CATALOG_INTERVAL_S: Final = 2.0
"""The consumer keeps at least 8 snapshots, over 3 s of commits at its fastest (2.5 a second
measured); a missed one is detected (`missed_commits`) and fails the measurement, never
guessed."""


@dataclass(frozen=True, slots=True)
class Visibility:
    """One API answer: how many trades of `symbol` it served, and when the answer arrived."""

    symbol: str
    total: int
    seen_at: float
    """Wall clock (epoch seconds) of the first answer (for any symbol) that showed the
    snapshot this total was read from: an upper bound of when it became visible."""
    latency_s: float
    arrived: float = 0.0
    """Wall clock when this answer itself arrived (`seen_at` or later)."""


@dataclass(frozen=True, slots=True)
class CommitSeen:
    """One Iceberg commit of the consumer, as its snapshot records it."""

    snapshot_id: int
    sequence_number: int
    committed_at: float
    """The snapshot's timestamp (epoch seconds), stamped by consumer-crypto as it commits."""
    next_offsets: Mapping[int, int]
    """Per partition, the next offset to read: everything below it is in the table."""


class WatchError(AssertionError):
    """The watch could not observe (API or catalog failing), so no timing can be trusted."""


class PipelineWatch:
    """Background observation of one test's symbols; use as a context manager.

    Args:
        api: A client for k2-query-api with its key.
        symbols: The symbols whose visibility is timed (the test's own).
        load_table: Loads `market_data.trades` through the catalog (called on each poll).
        topic: The topic whose offsets the snapshots record.
    """

    def __init__(
        self,
        api: httpx.Client,
        symbols: Iterable[str],
        load_table: Callable[[], Table],
        topic: str = TOPIC,
    ) -> None:
        self.symbols = sorted(set(symbols))
        self.visibility: list[Visibility] = []
        self.commits: list[CommitSeen] = []
        self._api = api
        self._load_table = load_table
        self._topic = topic
        self._seen_snapshots: set[int] = set()
        self._sequences: set[int] = set()
        self._first_sequence: int | None = None
        self._totals = dict.fromkeys(self.symbols, 0)
        self._first_seen: dict[int, float] = {}
        self.answers = 0
        self._stop = threading.Event()
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._guarded, args=(self._poll_api,), daemon=True),
            threading.Thread(target=self._guarded, args=(self._poll_catalog,), daemon=True),
        ]

    def __enter__(self) -> PipelineWatch:
        # Snapshots from before the watch are known, not timed: they hold earlier data only.
        self._record_commits(initial=True)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop observing; a final catalog read catches a commit made since the last poll."""
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._record_commits()

    @property
    def requests(self) -> int:
        """API requests made so far (what the watch costs the API)."""
        return self.answers

    def missed_commits(self) -> list[int]:
        """Sequence numbers of snapshots made during the watch but never seen (expired first)."""
        if self._first_sequence is None or not self._sequences:
            return []
        expected = range(self._first_sequence + 1, max(self._sequences) + 1)
        return [number for number in expected if number not in self._sequences]

    def totals(self) -> dict[str, int]:
        """The latest total the API served per symbol."""
        with self._lock:
            return dict(self._totals)

    def raise_if_failed(self) -> None:
        """Raise WatchError if an observer thread stopped on an error."""
        if self._errors:
            raise WatchError("the pipeline watch failed: " + "; ".join(self._errors))

    def wait_until_visible(
        self,
        expected: Mapping[str, int],
        deadline_s: float,
        guard: Callable[[], None] | None = None,
    ) -> dict[str, int]:
        """Block until the API serves `expected` trades per symbol (see `hops.poll_until`).

        `guard` should raise if the stack itself broke (a stopped service), so a broken
        pipeline fails in seconds, not at the deadline.
        """

        def seen() -> dict[str, int]:
            self.raise_if_failed()
            return self.totals()

        return poll_until(
            seen,
            lambda totals: all(totals.get(s, 0) >= n for s, n in expected.items()),
            deadline_s,
            f"the API to serve {dict(expected)}",
            interval_s=0.05,
            guard=guard,
        )

    def _guarded(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except Exception as exc:  # reported by raise_if_failed, in the test's thread
            self._errors.append(f"{loop.__name__}: {type(exc).__name__}: {exc}")

    def _poll_api(self) -> None:
        turn = itertools.cycle(self.symbols)
        while not self._stop.is_set():
            symbol = next(turn)
            if self._ask(symbol):
                for other in self.symbols:
                    if other != symbol:
                        self._ask(other)
            self._stop.wait(API_INTERVAL_S)

    def _ask(self, symbol: str) -> bool:
        """Record one answer for `symbol`; True if it showed a snapshot not seen before."""
        began = time.perf_counter()
        total, snapshot = api_total_at(self._api, symbol)
        arrived = time.time()
        latency = time.perf_counter() - began
        with self._lock:
            new = snapshot is None or snapshot not in self._first_seen
            if snapshot is not None:
                self._first_seen.setdefault(snapshot, arrived)
            dated = self._first_seen[snapshot] if snapshot is not None else arrived
            self.visibility.append(Visibility(symbol, total, dated, latency, arrived))
            self._totals[symbol] = total
            self.answers += 1
        return new and snapshot is not None

    def _poll_catalog(self) -> None:
        while not self._stop.wait(CATALOG_INTERVAL_S):
            self._record_commits()

    def _record_commits(self, *, initial: bool = False) -> None:
        table = self._load_table()
        found: list[CommitSeen] = []
        for snapshot in table.metadata.snapshots:
            if snapshot.snapshot_id in self._seen_snapshots:
                continue
            self._seen_snapshots.add(snapshot.snapshot_id)
            if initial:
                self._first_sequence = max(self._first_sequence or 0, snapshot.sequence_number or 0)
                continue
            self._sequences.add(snapshot.sequence_number or 0)
            try:
                stored = snapshot_offsets(snapshot, self._topic)
            except OffsetsCorruptError:
                stored = None
            if stored is None:
                continue  # not the consumer's (compaction, a test's own append)
            found.append(
                CommitSeen(
                    snapshot.snapshot_id,
                    snapshot.sequence_number or 0,
                    snapshot.timestamp_ms / 1000,
                    dict(stored.partitions),
                )
            )
        if initial and self._first_sequence is None:
            self._first_sequence = 0  # an empty table: every snapshot from here on counts
        with self._lock:
            self.commits.extend(found)
            self.commits.sort(key=lambda commit: commit.sequence_number)
