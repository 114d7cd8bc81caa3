"""The feed's Kafka side: map, serialise, produce at a rate, and account for every delivery.

Every produced trade either lands in the ledger with its partition and offset, or counts as a
failure; a run with any failure, or with reports still missing after the flush timeout, raises
DeliveryError when it ends. Nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import islice
from typing import Any, Final, Protocol, TypeVar

from k2.feed.ledger import Ledger, LedgerEntry
from k2.feed.pacing import Pacer
from k2.feed.serializer import PreparedTrade
from k2.model.binance import MalformedFrameError, from_binance_frame
from k2.model.names import TOPIC
from k2.model.timestamps import from_micros, to_micros, utc_now
from k2.model.trade import Trade

DeliveryCallback = Callable[[Any, Any], None]
"""(KafkaError | None, Message): confluent-kafka's on_delivery signature."""

DEFAULT_FLUSH_TIMEOUT: Final = 60.0
PACING_SLACK_S: Final = 0.005
"""Messages due within 5 ms go out together (see Pacer): the sender wakes at most 200 times a
second whatever the rate. It also keeps every wait above librdkafka's poll() resolution of a
whole millisecond: asked to wait less, poll() returns at once, and a pacer sleeping through it
spun (measured: half a core at 1,000 msg/s)."""

_Item = TypeVar("_Item")


class KafkaProducer(Protocol):
    """The part of confluent_kafka.Producer the feed uses (tests pass an in-memory fake)."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue one message; raises BufferError when the local queue is full."""
        ...

    def poll(self, timeout: float = -1) -> int:
        """Serve delivery reports for up to `timeout` seconds."""
        ...

    def flush(self, timeout: float = -1) -> int:
        """Wait for every queued message's report; return how many are still outstanding."""
        ...


class DeliveredMessage(Protocol):
    """What the feed reads from a delivery report's message."""

    def partition(self) -> int | None:
        """The partition the broker wrote to."""
        ...

    def offset(self) -> int | None:
        """The offset the broker assigned."""
        ...


def producer_config(bootstrap: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """confluent-kafka settings for an idempotent, ordered, acks=all producer.

    Idempotence makes broker-side retries neither duplicate nor reorder a partition; murmur2
    puts a symbol on the partition a Java producer would pick; a message the broker has not
    acknowledged within a minute fails the run instead of hanging it for librdkafka's 5.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": "k2-feed",
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        # 50 ms of batching: far fewer produce requests than one per few messages (measured
        # at 1,000 msg/s: 0.18 core for this process at 10 ms, 0.10 at 50 ms); the broker's
        # CPU is the stack's CPU, and 50 ms is small beside a commit.
        "linger.ms": 50,
        "partitioner": "murmur2_random",
        "message.timeout.ms": 60_000,
        # librdkafka backs off up to 10 s between reconnects; the feed's broker is on this
        # host, so a retry a second costs nothing and the feed resumes within a second of a
        # broker's return (which k2.feed.renewal's stall test relies on).
        "reconnect.backoff.max.ms": 1_000,
    }
    config.update(overrides or {})
    return config


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """One message Kafka did not acknowledge."""

    message_id: str | None
    trade_id: str | None
    error: str


class DeliveryError(RuntimeError):
    """Some produced messages were not acknowledged; says how many and the first error."""

    def __init__(
        self, topic: str, total: int, failures: list[DeliveryFailure], undelivered: int = 0
    ) -> None:
        self.failures = failures
        self.undelivered = undelivered
        parts = []
        if failures:
            first = failures[0]
            what = first.trade_id or "raw message"
            parts.append(
                f"{len(failures)} of {total} deliveries to {topic} failed; "
                f"first: {what} ({first.message_id}): {first.error}"
            )
        if undelivered:
            parts.append(f"{undelivered} of {total} still unacknowledged after the flush timeout")
        super().__init__("; ".join(parts))


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One send run: how many trades Kafka acknowledged, and how long until the last one."""

    count: int
    seconds: float

    @property
    def rate(self) -> float:
        """Achieved msg/s, produce start to last acknowledgement."""
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        return f"{self.count} trades in {self.seconds:.2f} s ({self.rate:.1f} msg/s)"


@dataclass(frozen=True, slots=True)
class RawDelivery:
    """Where Kafka put one raw (bad-input) message."""

    partition: int
    offset: int


def _as_is(_: int, trade: Trade) -> Trade:
    return trade


class FeedProducer:
    """Produces Trades to one topic, keyed by symbol, paced, with a ledger of acknowledgements.

    `serializer` turns a Trade into the Kafka value (a TradeSerializer in production). The
    clocks are injectable for tests; the pacer waits by polling the producer, so delivery
    reports keep arriving while it waits.
    """

    def __init__(
        self,
        producer: KafkaProducer,
        serializer: Callable[[Trade], bytes],
        *,
        topic: str = TOPIC,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        ledger: Ledger | None = None,
    ) -> None:
        self.topic = topic
        self.ledger = ledger if ledger is not None else Ledger()
        self._producer = producer
        self.serializer = serializer
        self._clock = clock
        self._wall_clock = wall_clock
        self._flush_timeout = flush_timeout
        self._failures: list[DeliveryFailure] = []

    @property
    def producer(self) -> KafkaProducer:
        """The Kafka client in use (a RenewingProducer from open_feed: its renewals tell)."""
        return self._producer

    def send_frames(
        self,
        frames: Iterable[Mapping[str, Any]],
        *,
        count: int | None = None,
        rate: float | None = None,
    ) -> RunSummary:
        """Map each Binance frame as it is sent (ingestion time = that moment) and produce it.

        A malformed frame raises MalformedFrameError naming its position in `frames` (1-based),
        after what was already produced has been flushed into the ledger.
        """
        return self._run(frames, self._map_frame, count, rate)

    def send_trades(
        self, trades: Iterable[Trade], *, count: int | None = None, rate: float | None = None
    ) -> RunSummary:
        """Produce up to `count` trades (None: all) at `rate` msg/s (None or 0: flat out).

        Returns once every message is acknowledged; raises DeliveryError if any was not.
        """
        return self._run(trades, _as_is, count, rate)

    def send_prepared(
        self, items: Sequence[PreparedTrade], *, rate: float | None = None
    ) -> RunSummary:
        """Send trades encoded before the clock started (see TradeSerializer.prepare).

        Each goes out with its send time as ingestion_timestamp, and enters the ledger with
        it. The loop only stamps, produces and keeps each report as it came; the ledger is
        built after the flush, so a process sends tens of thousands of trades a second.
        """
        count = len(items)
        sent_at = [0.0] * count
        ingested = [0] * count
        reports: list[tuple[int, object, int | None, int | None, float, datetime]] = []
        clock, wall = self._clock, self._wall_clock

        def report(index: int, error: object, message: DeliveredMessage) -> None:
            reports.append((index, error, message.partition(), message.offset(), clock(), wall()))

        pacer = Pacer(rate, clock=clock, sleep=self._producer.poll, slack_s=PACING_SLACK_S)
        failures_before = len(self._failures)
        started = clock()
        sent = 0

        def settle() -> DeliveryError | None:
            return self._settle(
                failures_before, sent, lambda: self._record(items, reports, sent_at, ingested)
            )

        try:
            for index, item in enumerate(items):
                pacer.wait()
                ingested[index] = to_micros(wall())
                sent_at[index] = clock()
                self._send(item.encode(ingested[index]), item.key, partial(report, index))
                sent += 1
        except BaseException as exc:
            problem = settle()
            if problem is not None:
                exc.add_note(f"also: {problem}")
            raise
        problem = settle()
        if problem is not None:
            raise problem
        return RunSummary(count=sent, seconds=clock() - started)

    def _record(
        self,
        items: Sequence[PreparedTrade],
        reports: list[tuple[int, object, int | None, int | None, float, datetime]],
        sent_at: list[float],
        ingested: list[int],
    ) -> None:
        """Turn the raw reports of `send_prepared` into ledger entries or failures."""
        for index, error, partition, offset, acked, ack_wall in reports:
            trade = dataclasses.replace(
                items[index].trade, ingestion_timestamp=from_micros(ingested[index])
            )
            if error is not None or partition is None or offset is None or offset < 0:
                why = (
                    str(error)
                    if error is not None
                    else (f"report without an offset (partition={partition}, offset={offset})")
                )
                self._failures.append(DeliveryFailure(trade.message_id, trade.trade_id, why))
                continue
            self.ledger.append(
                LedgerEntry(trade, partition, offset, sent_at[index], acked, ack_wall)
            )

    def _map_frame(self, number: int, frame: Mapping[str, Any]) -> Trade:
        try:
            return from_binance_frame(frame, self._wall_clock())
        except MalformedFrameError as exc:
            raise MalformedFrameError(f"frame {number}: {exc}") from exc

    def _run(
        self,
        items: Iterable[_Item],
        to_trade: Callable[[int, _Item], Trade],
        count: int | None,
        rate: float | None,
    ) -> RunSummary:
        pacer = Pacer(rate, clock=self._clock, sleep=self._producer.poll, slack_s=PACING_SLACK_S)
        failures_before = len(self._failures)
        started = self._clock()
        sent = 0
        try:
            for item in items if count is None else islice(items, count):
                pacer.wait()
                trade = to_trade(sent + 1, item)
                self._produce(self.serializer(trade), trade.symbol.encode(), trade)
                sent += 1
        except BaseException as exc:
            # What went out still gets its reports into the ledger, and its failures are
            # told along with the error that stopped the run.
            problem = self._settle(failures_before, sent)
            if problem is not None:
                exc.add_note(f"also: {problem}")
            raise
        problem = self._settle(failures_before, sent)
        if problem is not None:
            raise problem
        return RunSummary(count=sent, seconds=self._clock() - started)

    def _settle(
        self, failures_before: int, sent: int, after_flush: Callable[[], None] = lambda: None
    ) -> DeliveryError | None:
        """Flush, then the DeliveryError of this run's failures and missing reports, if any.

        `after_flush` turns reports kept raw during the run into ledger entries first.
        """
        undelivered = self._producer.flush(self._flush_timeout)
        after_flush()
        failures = self._failures[failures_before:]
        if failures or undelivered:
            return DeliveryError(self.topic, sent, failures, undelivered)
        return None

    def _produce(self, value: bytes, key: bytes, trade: Trade) -> None:
        self._send(value, key, partial(self._on_delivery, trade, self._clock()))

    def _send(self, value: bytes, key: bytes, on_delivery: DeliveryCallback) -> None:
        """Produce one message, serving reports while librdkafka's queue is full."""
        while True:
            try:
                self._producer.produce(self.topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                # librdkafka's local queue is full: serve reports until there is room.
                self._producer.poll(0.05)
        self._producer.poll(0)

    def _on_delivery(
        self, trade: Trade, sent: float, error: object, message: DeliveredMessage
    ) -> None:
        if error is not None:
            self._failures.append(DeliveryFailure(trade.message_id, trade.trade_id, str(error)))
            return
        partition, offset = message.partition(), message.offset()
        if partition is None or offset is None or offset < 0:
            self._failures.append(
                DeliveryFailure(
                    trade.message_id,
                    trade.trade_id,
                    f"report without an offset (partition={partition}, offset={offset})",
                )
            )
            return
        self.ledger.append(
            LedgerEntry(
                trade=trade,
                partition=partition,
                offset=offset,
                sent_monotonic=sent,
                ack_monotonic=self._clock(),
                ack_wall=self._wall_clock(),
            )
        )

    def send_raw(self, value: bytes | None, *, key: bytes | None = None) -> RawDelivery:
        """Produce one value as given (bad input for dead-letter tests) and wait for its report.

        Not recorded in the ledger, which holds trades only; raises DeliveryError on failure.
        """
        reports: list[tuple[object, int | None, int | None]] = []

        def on_delivery(error: object, message: DeliveredMessage) -> None:
            reports.append((error, message.partition(), message.offset()))

        self._producer.produce(self.topic, value, key, on_delivery=on_delivery)
        undelivered = self._producer.flush(self._flush_timeout)
        if undelivered or not reports:
            raise DeliveryError(self.topic, 1, [], undelivered or 1)
        error, partition, offset = reports[0]
        if error is not None or partition is None or offset is None:
            failure = DeliveryFailure(None, None, str(error) if error else "report without offset")
            raise DeliveryError(self.topic, 1, [failure])
        return RawDelivery(partition=partition, offset=offset)
