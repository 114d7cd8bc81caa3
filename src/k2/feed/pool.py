"""Feed worker processes: the load generator runs beside the tests, not inside them.

A feed inside the test process shares its interpreter lock with the threads that watch the
pipeline, so a busy watch slowed the feed and a busy feed delayed the watch: on a slow machine
the gate then measured itself. `FeedPool` keeps worker processes, each with its own Kafka
producer connected once, and splits every run among them by symbol (a symbol stays in one
worker, so its trades reach Kafka in trade-id order). Before a run starts each worker
generates and encodes its share (see `TradeSerializer.prepare`); when all are prepared they
are told to go together, and each paces its share of the rate. What comes back is one ledger,
as a single feed would have written it.

Processes are started with `spawn`: forking a process that runs threads (pytest's watch,
librdkafka's) can deadlock the child. Workers run at a lower CPU priority (`niceness`, 10 by
default): on a machine with no CPU to spare the pipeline under test comes first and the load
generator yields, so its own cost shows as a late send (recorded per trade, and checked
against the run's rate) rather than as a slower pipeline.
"""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Final

from k2.feed.ledger import Ledger, LedgerEntry
from k2.model.names import TOPIC

START_DEADLINE_S: Final = 60.0
"""Time for a worker to start, import and connect (a few seconds on a loaded 2-core machine)."""
WORKER_RATE: Final = 5_000.0
"""A paced run uses one worker per this many msg/s: each worker holds its rate easily there,
and every extra producer costs its own idle-time CPU (librdkafka's threads)."""
SETTLE_S: Final = 90.0
"""After a run's paced duration: the producer's own flush limit (60 s) plus margin."""


class FeedPoolError(RuntimeError):
    """A worker could not start or its run failed; the message is the worker's own."""


@dataclass(frozen=True, slots=True)
class Share:
    """One worker's part of a run: its symbols, how many trades and at what rate."""

    symbols: tuple[str, ...]
    count: int
    rate: float | None
    seed: int
    start: datetime | None


def split(
    symbols: Sequence[str], count: int, rate: float | None, seed: int, workers: int
) -> list[Share]:
    """Symbols dealt round-robin to at most `workers` shares; count and rate follow them.

    Counts add up to `count` exactly and rates to `rate` (the generator spreads trades evenly
    over a share's symbols, so a share's part is its part of the symbols).
    """
    groups = [tuple(symbols[i :: max(1, workers)]) for i in range(min(workers, len(symbols)))]
    shares, given = [], 0
    for index, group in enumerate(groups):
        last = index == len(groups) - 1
        part = count - given if last else count * len(group) // len(symbols)
        given += part
        shares.append(
            Share(
                symbols=group,
                count=part,
                rate=None if not rate else rate * len(group) / len(symbols),
                seed=seed * 1000 + index,
                start=None,
            )
        )
    return [share for share in shares if share.count > 0]


def _worker(
    conn: Connection,
    bootstrap: str,
    registry_url: str,
    topic: str,
    overrides: Mapping[str, Any],
    niceness: int,
) -> None:
    """A worker's life: connect, then prepare, wait for go, send, report; until told to stop."""
    os.nice(niceness)
    from k2.feed.clients import open_feed
    from k2.feed.generator import DEFAULT_START, generate_frames
    from k2.feed.serializer import TradeSerializer
    from k2.model.binance import from_binance_frame
    from k2.model.timestamps import utc_now

    try:
        feed = open_feed(bootstrap, registry_url, topic=topic, producer_overrides=overrides)
    except Exception as exc:
        conn.send(("error", f"cannot open the feed: {type(exc).__name__}: {exc}"))
        return
    serialize = feed.serializer
    assert isinstance(serialize, TradeSerializer)  # open_feed makes one
    conn.send(("ready", os.getpid()))
    while True:
        message = conn.recv()
        if message[0] == "stop":
            return
        share: Share = message[1]
        try:
            placeholder = utc_now()
            frames = generate_frames(
                list(share.symbols), seed=share.seed, start=share.start or DEFAULT_START
            )
            prepared = [
                serialize.prepare(from_binance_frame(frame, placeholder))
                for _, frame in zip(range(share.count), frames, strict=False)
            ]
            # The prepared trades live until the run ends: keep the collector from walking
            # them again and again while the run is timed.
            gc.collect()
            gc.freeze()
            conn.send(("prepared", len(prepared)))
            if conn.recv()[0] != "go":
                return
            feed.ledger.entries.clear()
            feed.send_prepared(prepared, rate=share.rate)
            conn.send(("done", feed.ledger.entries))
            gc.unfreeze()
        except Exception as exc:
            notes = "; ".join(getattr(exc, "__notes__", []))
            conn.send(("error", f"{type(exc).__name__}: {exc}" + (f"; {notes}" if notes else "")))


class FeedPool:
    """Worker processes producing to one topic; use as a context manager.

    Args:
        bootstrap: Kafka bootstrap, HOST:PORT.
        registry_url: Schema registry URL (Confluent API); TradeV2 is registered there.
        processes: Workers to keep (default: the machine's cores); a run uses at most one
            per symbol.
        topic: Where trades go.
        producer_overrides: Extra librdkafka producer settings.
        niceness: How much lower than this process the workers' CPU priority is.
    """

    def __init__(
        self,
        bootstrap: str,
        registry_url: str,
        *,
        processes: int | None = None,
        topic: str = TOPIC,
        producer_overrides: Mapping[str, Any] | None = None,
        niceness: int = 10,
    ) -> None:
        self.processes = max(1, processes or os.cpu_count() or 2)
        self.topic = topic
        self._args = (bootstrap, registry_url, topic, dict(producer_overrides or {}), niceness)
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []

    def __enter__(self) -> FeedPool:
        context = multiprocessing.get_context("spawn")
        try:
            for number in range(self.processes):
                ours, theirs = context.Pipe()
                process: multiprocessing.process.BaseProcess = context.Process(
                    target=_worker,
                    args=(theirs, *self._args),
                    name=f"k2-feed-{number}",
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._workers.append((process, ours))
            for process, conn in self._workers:
                self._expect(process, conn, "ready", START_DEADLINE_S)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (to account for their CPU)."""
        return [process.pid for process, _ in self._workers if process.pid is not None]

    def send(
        self,
        symbols: Sequence[str],
        *,
        count: int,
        rate: float | None = None,
        seed: int = 0,
        start: datetime | None = None,
    ) -> Ledger:
        """The ledger of `count` generated trades over `symbols` at `rate` msg/s in all.

        `rate` None sends flat out. Entries are in acknowledgement order. Raises
        FeedPoolError with the worker's message if any share failed (its DeliveryError
        among them): a run is whole or it is an error.
        """
        workers = len(self._workers) if not rate else math.ceil(rate / WORKER_RATE)
        shares = [
            Share(s.symbols, s.count, s.rate, s.seed, start)
            for s in split(symbols, count, rate, seed, min(workers, len(self._workers)))
        ]
        busy = self._workers[: len(shares)]
        for (_, conn), share in zip(busy, shares, strict=True):
            conn.send(("run", share))
        for process, conn in busy:
            # Preparing costs about 0.1-0.3 ms a trade; a busy machine may take longer.
            self._expect(process, conn, "prepared", START_DEADLINE_S + count / 1000)
        for _, conn in busy:
            conn.send(("go",))
        paced = count / rate if rate else 0.0
        entries: list[LedgerEntry] = []
        for process, conn in busy:
            entries += self._expect(process, conn, "done", paced + SETTLE_S)
        entries.sort(key=lambda entry: entry.ack_monotonic)
        return Ledger(entries)

    def _expect(
        self,
        process: multiprocessing.process.BaseProcess,
        conn: Connection,
        what: str,
        within: float,
    ) -> Any:
        deadline = time.monotonic() + within
        while not conn.poll(0.2):
            if not process.is_alive():
                raise FeedPoolError(f"feed worker {process.name} died (exit {process.exitcode})")
            if time.monotonic() > deadline:
                raise FeedPoolError(
                    f"feed worker {process.name}: no {what!r} within {within:.0f} s"
                )
        try:
            kind, payload = conn.recv()
        except EOFError:
            process.join(1)
            raise FeedPoolError(
                f"feed worker {process.name} died (exit {process.exitcode})"
            ) from None
        if kind == "error":
            raise FeedPoolError(f"feed worker {process.name}: {payload}")
        if kind != what:
            raise FeedPoolError(f"feed worker {process.name} said {kind!r}, expected {what!r}")
        return payload

    def close(self) -> None:
        """Stop every worker (a stuck one is terminated after a few seconds)."""
        for _, conn in self._workers:
            with contextlib.suppress(OSError):
                conn.send(("stop",))
        for process, conn in self._workers:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join(5)
            conn.close()
        self._workers.clear()
