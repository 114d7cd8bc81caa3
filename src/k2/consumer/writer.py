"""The consume loop: Kafka batches in, one Iceberg commit per batch out, then the Kafka commit.

Per batch, in this order: every record is decoded and validated (bad ones go to the dead-letter
topic), the batch closes on size or age, the dead letters are flushed, the rows and the offsets
go to Iceberg in one commit (on a worker thread, so the next batch is consumed meanwhile; at
most one commit is in flight; a batch due meanwhile keeps filling until it can go), and only
then are the offsets committed to Kafka, asynchronously: librdkafka waits for a synchronous
commit without a deadline, and while the group coordinator was away (Kafka paused) that wait
held the poll loop for minutes, so the rebalance that would have recovered the group never ran.
The group's offsets only lag the table's, so a commit that fails costs nothing but a report.

Anything that goes wrong before a batch's Iceberg commit abandons it: the consumer seeks back to
the batch's first offsets and reads it again. On a partition assignment the start offsets come
from the table's snapshot summary, not from the group. Both are safe because the table records
exactly which offsets it holds: nothing is written twice and nothing is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from k2.consumer.batch import Batch, BatchPolicy, SealedBatch
from k2.consumer.config import DEFAULT_COMMIT_DEADLINE_S, DEFAULT_KAFKA_LOST_S
from k2.consumer.deadletter import DeadLetterError, DeadLetterQueue, Headers
from k2.consumer.decoding import RecordDecoder, Rejected
from k2.consumer.health import HealthState
from k2.consumer.notices import CommitNotices
from k2.consumer.offsets import start_positions
from k2.consumer.registry import RegistryUnavailableError
from k2.consumer.sink import CommitOutcome
from k2.model.timestamps import utc_now

log = logging.getLogger(__name__)

DEFAULT_POLL_TIMEOUT_S: Final = 0.25
DEFAULT_CONSUME_MAX: Final = 5_000
LAG_INTERVAL_S: Final = 5.0
MAX_BACKOFF_S: Final = 2.0
"""A retry costs one refused connection; a longer wait only delays recovery once the service
is back (the fault matrix measured up to 5 s of it at a 5 s cap)."""
_LOG_EVERY_S: Final = 10.0
_HELD_POLL_S: Final = 0.02
"""Poll timeout while a due batch waits for the running commit (its end is noticed this fast)."""
DEFAULT_CLOSE_WAIT_S: Final = 5.0
"""How long a failing writer waits for the Kafka consumer's close (leaving the group).

With no broker answering, librdkafka's close can wait for ever (confluentinc/librdkafka#4519):
seen when Kafka restarted under a 0.625-core quota and the writer, past K2_KAFKA_LOST_S,
stayed "shutting down" for 40 s instead of exiting. Leaving without the goodbye costs nothing:
the restart rejoins with the same static member id and resumes from the table."""


class KafkaMessage(Protocol):
    """What the writer reads from a consumed message (confluent_kafka.Message)."""

    def error(self) -> KafkaError | None:
        """The consumer error this message stands for, if any."""
        ...

    def topic(self) -> str | None:
        """Source topic."""
        ...

    def partition(self) -> int | None:
        """Source partition."""
        ...

    def offset(self) -> int | None:
        """Source offset."""
        ...

    def key(self) -> bytes | None:
        """Raw key bytes."""
        ...

    def value(self) -> bytes | None:
        """Raw value bytes."""
        ...

    def headers(self) -> Any:
        """Raw headers: a list of (name, bytes) or None."""
        ...


RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class KafkaConsumer(Protocol):
    """The part of confluent_kafka.Consumer the writer uses (tests pass a fake)."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the group for `topics`."""
        ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> Sequence[KafkaMessage]:
        """Up to `num_messages` messages, waiting at most `timeout` seconds."""
        ...

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Start fetching `partitions` at their offsets."""
        ...

    def assignment(self) -> list[TopicPartition]:
        """The partitions currently assigned."""
        ...

    def seek(self, partition: TopicPartition) -> None:
        """Move the fetch position of an assigned partition."""
        ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The next offset to be consumed per partition."""
        ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        """(low, high) watermarks of a partition."""
        ...

    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[True]) -> None:
        """Send `offsets` to the group; the answer comes to `on_commit` during a later poll."""
        ...

    def close(self) -> None:
        """Leave the group."""
        ...


class Sink(Protocol):
    """Where batches go (IcebergSink; a fake in tests)."""

    def stored_offsets(self, *, refresh: bool = True) -> dict[int, int]:
        """Next offset per partition recorded in the table."""
        ...

    def commit(self, batch: SealedBatch) -> CommitOutcome:
        """Write one batch in one commit."""
        ...

    def commit_idle_s(self) -> float | None:
        """Seconds the running commit has gone without progress; None if it cannot tell."""
        ...


class GroupCommitReport:
    """The consumer's `on_commit` callback: failed Kafka offset commits go to health and the log.

    librdkafka calls it from inside `consume`, on the writer's thread. A failure is harmless to
    the data (the table holds the offsets) but worth seeing: it says the coordinator is away.
    """

    def __init__(self, health: HealthState, clock: Callable[[], float] = time.monotonic) -> None:
        self._health = health
        self._throttle = _Throttle(clock)

    def __call__(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Report `error`, or the first partition's error, if the commit failed."""
        failed = [tp for tp in partitions if tp.error is not None]
        problem = error if error is not None else (failed[0].error if failed else None)
        if problem is None:
            self._health.group_committed()
            return
        self._health.error(f"Kafka offset commit failed: {problem}")
        self._health.count("group_commit_failures")
        if self._throttle("group-commit"):
            log.warning("Kafka offset commit failed (the table has the offsets): %s", problem)


class FatalWriterError(RuntimeError):
    """The writer can no longer tell what it has read; exit and resume from the table."""


class CommitHungError(FatalWriterError):
    """An Iceberg commit made no progress for its deadline; its thread can only be left behind.

    The process must exit without waiting for that thread. Whether the commit lands later or
    never, the restart resumes from the offsets the table holds, and a commit that did land
    is recognised by its message ids (k2.consumer.dedup).
    """


class KafkaLostError(FatalWriterError):
    """No broker known and none answering for too long: only a new client bootstraps again."""


class _Throttle:
    """Log a recurring problem once per interval, not once per poll."""

    def __init__(self, clock: Callable[[], float], every_s: float = _LOG_EVERY_S) -> None:
        self._clock = clock
        self._every_s = every_s
        self._last: dict[str, float] = {}

    def __call__(self, key: str) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._every_s:
            return False
        self._last[key] = now
        return True


def _describe(offsets: dict[int, int], first: dict[int, int]) -> str:
    return " ".join(f"p{p}:{first.get(p, '?')}-{offsets[p]}" for p in sorted(offsets))


class IcebergWriter:
    """Consumes one topic into the Iceberg table, one commit per batch, exactly once."""

    def __init__(
        self,
        *,
        consumer: KafkaConsumer,
        decoder: RecordDecoder,
        dead_letters: DeadLetterQueue,
        sink: Sink,
        health: HealthState,
        policy: BatchPolicy,
        topic: str,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
        poll_timeout_s: float = DEFAULT_POLL_TIMEOUT_S,
        consume_max: int = DEFAULT_CONSUME_MAX,
        sleep: Callable[[float], object] | None = None,
        commit_deadline_s: float = DEFAULT_COMMIT_DEADLINE_S,
        kafka_lost_s: float = DEFAULT_KAFKA_LOST_S,
        notices: CommitNotices | None = None,
        close_wait_s: float = DEFAULT_CLOSE_WAIT_S,
    ) -> None:
        self.topic = topic
        self._notices = notices
        self._consumer = consumer
        self._decoder = decoder
        self._dead_letters = dead_letters
        self._sink = sink
        self._health = health
        self._policy = policy
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="k2-commit")
        self._clock = clock
        self._wall_clock = wall_clock
        self._poll_timeout_s = poll_timeout_s
        self._consume_max = consume_max
        self._batch = Batch()
        self._in_flight: tuple[SealedBatch, Future[CommitOutcome], float] | None = None
        """The running commit: its batch, its future and when it began (self._clock)."""
        self._commit_deadline_s = commit_deadline_s
        self._kafka_lost_s = kafka_lost_s
        self.hung = False
        """A commit ran past its deadline: the process must exit without joining its thread."""
        self._close_wait_s = close_wait_s
        self._pending_since: float | None = None
        self._failures = 0
        self._registry_down = False
        self._next_lag = 0.0
        self._stop = threading.Event()
        self._sleep = sleep
        self._throttle = _Throttle(clock)

    # -- lifecycle -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, then commit what is batched and leave the group."""
        self._stop = stop
        self._consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        clean = False
        try:
            while not stop.is_set():
                self.step()
            clean = True
        finally:
            self.shutdown(commit=clean)

    def shutdown(self, *, commit: bool) -> None:
        """Finish: commit the open batch (or abandon it), wait for the commit, close the consumer.

        Abandoning is as safe as committing: the next owner of the partitions resumes from the
        offsets in the table. A failing writer (commit False) waits for the close at most
        close_wait_s, then leaves it behind (the exit must not wait for it either).
        """
        self._health.stopping()
        try:
            if not self.hung:
                if commit and self._batch:
                    self._close_batch()
                self._reap(block=True)
        except CommitHungError as exc:
            log.error("%s", exc)
        except Exception:
            log.exception("final commit failed; the batch will be read again on restart")
        finally:
            # Never wait for a hung commit's thread: nothing would end the wait.
            self._executor.shutdown(wait=not self.hung, cancel_futures=self.hung)
            if commit:
                self._consumer.close()
            else:
                self._close_within(self._close_wait_s)

    def _close_within(self, seconds: float) -> None:
        """Close the consumer on a thread of its own; stop waiting for it after `seconds`."""
        closing = threading.Thread(target=self._consumer.close, name="k2-kafka-close", daemon=True)
        closing.start()
        closing.join(seconds)
        if closing.is_alive():
            log.warning(
                "the Kafka consumer's close still waits after %g s (no broker answers): "
                "leaving without it; the restart rejoins the group",
                seconds,
            )

    # -- the loop --------------------------------------------------------------------------

    def step(self) -> None:
        """One poll: consume, decode, batch; reap a finished commit; close a due batch.

        A batch due by age while the previous commit still runs stays open and keeps
        filling (up to max_records) instead of blocking the loop: under a backlog batches
        grow and the per-commit cost is spread over more rows, and the trades that arrive
        meanwhile ride the next commit instead of waiting in Kafka. Only a full batch waits.
        """
        timeout = self._poll_timeout_s
        left = self._policy.time_left(self._batch, self._clock())
        if left is not None:
            # Overdue and held open by a running commit: poll briefly, never spin.
            timeout = min(timeout, left if left > 0 else _HELD_POLL_S)
        room = max(1, min(self._consume_max, self._policy.room(self._batch)))
        messages = self._consumer.consume(num_messages=room, timeout=timeout)
        self._health.polled()
        if messages:
            self._handle(messages)
        self._reap(block=False)
        self._check_deadline()
        self._check_kafka()
        if self._policy.should_close(self._batch, self._clock()) and (
            self._in_flight is None or self._policy.room(self._batch) == 0
        ):
            self._close_batch()
        if self._clock() >= self._next_lag:
            self._update_lag()

    def _handle(self, messages: Sequence[KafkaMessage]) -> None:
        batch = self._batch
        now = self._clock()
        wall = self._wall_clock()
        decode = self._decoder.decode
        processed = 0
        for index, message in enumerate(messages):
            error = message.error()
            if error is not None:
                self._consumer_error(error)
                continue
            partition = message.partition()
            offset = message.offset()
            if partition is None or offset is None:
                continue
            try:
                trade = decode(message.value(), wall)
            except Rejected as rejected:
                self._dead_letter(message, partition, offset, rejected)
                batch.add_dead_letter(partition, offset, now)
            except RegistryUnavailableError as exc:
                self._registry_unavailable(exc, messages[index:])
                break
            else:
                batch.add_trade(trade, partition, offset, now)
            processed += 1
        else:
            if self._registry_down:
                self._registry_down = False
                self._failures = 0
                self._health.registry_ok()
                log.info("schema registry answers again")
        if processed:
            self._health.count("consumed", processed)
        if batch and self._pending_since is None:
            self._set_pending(batch.opened_at)

    def _dead_letter(
        self, message: KafkaMessage, partition: int, offset: int, rejected: Rejected
    ) -> None:
        headers: Headers | None = message.headers()
        self._dead_letters.send(
            key=message.key(),
            value=message.value(),
            headers=headers,
            kind=rejected.kind,
            reason=rejected.reason,
            source_topic=message.topic() or self.topic,
            partition=partition,
            offset=offset,
        )
        if self._throttle(f"dlq:{rejected.kind}"):
            log.warning(
                "dead-lettering %s/%d@%d (%s): %s",
                self.topic,
                partition,
                offset,
                rejected.kind,
                rejected.reason[:300],
            )

    def _consumer_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise FatalWriterError(f"fatal Kafka consumer error: {error}")
        self._health.error(f"Kafka: {error}")
        if self._throttle(f"kafka:{error.code()}"):
            log.warning("Kafka consumer error: %s", error)

    def _registry_unavailable(
        self, exc: RegistryUnavailableError, unprocessed: Sequence[KafkaMessage]
    ) -> None:
        """Read the unprocessed messages again later; never dead-letter them for this."""
        self._registry_down = True
        self._health.registry_failed(str(exc))
        if self._throttle("registry"):
            log.error("%s; waiting, %d records held back", exc, len(unprocessed))
        first: dict[int, int] = {}
        for message in unprocessed:
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None and partition not in first:
                first[partition] = offset
        self._seek(first)
        self._back_off()

    # -- batches and commits ---------------------------------------------------------------

    def _close_batch(self) -> None:
        """Flush the batch's dead letters, wait for the previous commit, start this one."""
        try:
            delivered = self._dead_letters.flush()
        except DeadLetterError as exc:
            self._abandon([], f"dead letters not acknowledged: {exc}")
            return
        if delivered:
            self._health.count("dead_lettered", delivered)
        if not self._reap(block=True):
            # The previous batch failed; rewinding to its start dropped this one too.
            return
        sealed = self._batch.seal(self._clock())
        self._batch = Batch()
        self._health.commit_started()
        future = self._executor.submit(self._sink.commit, sealed)
        self._in_flight = (sealed, future, self._clock())

    def _check_kafka(self) -> None:
        """Raise KafkaLostError once no broker has been known or heard for kafka_lost_s."""
        lost = self._health.kafka_lost_for()
        if lost is not None and lost > self._kafka_lost_s:
            raise KafkaLostError(
                f"no Kafka broker known and none answered for {lost:.1f} s "
                f"(K2_KAFKA_LOST_S={self._kafka_lost_s:g}): exiting so that a restart "
                "bootstraps again (librdkafka may not; confluentinc/librdkafka#5301)"
            )

    def _check_deadline(self) -> None:
        """Raise CommitHungError once the running commit has gone its deadline without progress."""
        if self._in_flight is not None and self._deadline_left(self._in_flight[2]) <= 0:
            raise self._hung(self._in_flight[0], self._in_flight[2])

    def _deadline_left(self, began: float) -> float:
        """The deadline less the commit's silence: since it began, or its last progress.

        The sink tells progress (each file, manifest, catalog answer, batch of message ids).
        Timing the whole commit instead gave up on commits that were slow but moving: the
        first one after a restart reads an hour's message ids, seconds on a slow machine, and
        giving up on it restarted the consumer into the same read, for ever.
        """
        silent = self._clock() - began
        idle = self._sink.commit_idle_s()
        if idle is not None:
            silent = min(silent, idle)
        return self._commit_deadline_s - silent

    def _hung(self, sealed: SealedBatch, began: float) -> CommitHungError:
        self.hung = True
        return CommitHungError(
            f"Iceberg commit of {sealed.size} records "
            f"({_describe(sealed.next_offsets, sealed.first_offsets)}) made no progress for "
            f"{self._commit_deadline_s:g} s (K2_COMMIT_DEADLINE_S; running "
            f"{self._clock() - began:.1f} s): giving up on it; "
            "exiting so that a restart resumes from the offsets in the table"
        )

    def _outcome(
        self, sealed: SealedBatch, future: Future[CommitOutcome], began: float
    ) -> CommitOutcome:
        """The commit's outcome (or its error), waited for while it keeps progressing."""
        while True:
            left = self._deadline_left(began)
            try:
                return future.result(timeout=max(0.0, left))
            except FutureTimeout:
                if self._deadline_left(began) <= 0:
                    raise self._hung(sealed, began) from None

    def _reap(self, *, block: bool) -> bool:
        """Finish the in-flight commit if it is done (or wait for it); False if it failed.

        A blocking wait lasts at most until the commit's deadline (then CommitHungError).
        """
        if self._in_flight is None:
            return True
        sealed, future, began = self._in_flight
        if not block and not future.done():
            return True
        try:
            outcome = self._outcome(sealed, future, began)
        except CommitHungError:
            raise
        except Exception as exc:
            self._in_flight = None
            log.error(
                "Iceberg commit of %d records (%s) failed, reading them again: %s: %s",
                sealed.size,
                _describe(sealed.next_offsets, sealed.first_offsets),
                type(exc).__name__,
                exc,
            )
            why = f"Iceberg commit failed: {type(exc).__name__}: {exc}"
            self._health.commit_failed(why)
            self._abandon([sealed], why)
            return False
        self._in_flight = None
        self._committed(sealed, outcome)
        return True

    def _committed(self, sealed: SealedBatch, outcome: CommitOutcome) -> None:
        self._failures = 0
        kafka = self._commit_kafka({p: outcome.offsets[p] for p in sealed.next_offsets})
        if self._notices is not None and outcome.committed and outcome.snapshot_id is not None:
            self._notices.announce(outcome.snapshot_id)  # readers reload now, not on a timer
        self._health.committed(
            outcome.rows,
            outcome.skipped_rows,
            outcome.attempts - 1,
            waited_s=sealed.waited_s,
            breakdown=outcome.breakdown,
        )
        if outcome.replayed_rows:
            self._health.count("replayed_rows", outcome.replayed_rows)
        self._set_pending(self._batch.opened_at)
        log.info(
            "committed %d rows (%d dead-lettered, %d already in the table, %d replays) %s "
            "in %.0f ms%s; %s; waited %.0f ms, then %s",
            outcome.rows,
            sealed.dead_letters,
            outcome.skipped_rows,
            outcome.replayed_rows,
            _describe(outcome.offsets, sealed.first_offsets),
            outcome.seconds * 1000,
            f", snapshot {outcome.snapshot_id}" if outcome.committed else ", nothing new",
            kafka,
            sealed.waited_s * 1000,
            outcome.breakdown.describe() if outcome.breakdown else "no breakdown",
        )

    def _commit_kafka(self, offsets: dict[int, int]) -> str:
        """Send the group's offsets after the table's; never wait for the answer.

        The answer (GroupCommitReport) only reports: a failure delays the group, not the data.
        """
        partitions = [TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=True)
        except KafkaException as exc:
            self._health.error(f"Kafka offset commit failed: {exc}")
            log.warning("Kafka offset commit not sent (the table has the offsets): %s", exc)
            return "Kafka offset commit FAILED"
        return "Kafka offsets sent"

    def _abandon(self, batches: list[SealedBatch], why: str) -> None:
        """Drop `batches` and the open batch, seek back to their first offsets, back off."""
        abandoned = len(batches) + (1 if self._batch else 0)
        self._rewind(batches)
        self._health.count("abandoned_batches", abandoned)
        self._health.error(why)
        self._back_off()

    def _rewind(self, batches: list[SealedBatch], keep: set[int] | None = None) -> None:
        """Seek to the earliest first offset of `batches` and the open batch, which is dropped.

        `keep` limits the seeks to those partitions (the ones still assigned in a rebalance).
        """
        starts: dict[int, int] = {}
        for first_offsets in [*(b.first_offsets for b in batches), self._batch.first_offsets]:
            for partition, offset in first_offsets.items():
                starts[partition] = min(offset, starts.get(partition, offset))
        self._batch = Batch()
        if keep is not None:
            starts = {p: o for p, o in starts.items() if p in keep}
        self._seek(starts)

    def _seek(self, offsets: dict[int, int]) -> None:
        for partition, offset in sorted(offsets.items()):
            try:
                self._consumer.seek(TopicPartition(self.topic, partition, offset))
            except KafkaException as exc:
                # Without the seek, the records would be skipped: exit and resume from the table.
                raise FatalWriterError(
                    f"cannot rewind {self.topic}/{partition} to {offset}: {exc}"
                ) from exc

    def _back_off(self) -> None:
        """Wait before retrying (0.25 s doubling to 2 s); a stop request cuts the wait short."""
        self._failures += 1
        delay = min(MAX_BACKOFF_S, 0.25 * 2 ** (self._failures - 1))
        (self._sleep or self._stop.wait)(delay)

    def _set_pending(self, since: float | None) -> None:
        self._pending_since = since
        self._health.uncommitted_since(since)

    # -- rebalances ------------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Start every assigned partition at the offset the table records for it."""
        ours = [tp.partition for tp in partitions if tp.topic == self.topic]
        stored: dict[int, int] = {}
        source = "table"
        try:
            stored = self._sink.stored_offsets(refresh=True)
        except Exception as exc:
            # The table's last known state is behind or equal to the truth, never ahead, and
            # the commit drops rows the table already holds: starting from it is safe.
            log.error("cannot reload the table's offsets on assignment: %s", exc)
            self._health.error(f"offsets on assignment: {exc}")
            try:
                stored, source = self._sink.stored_offsets(refresh=False), "cached table"
            except Exception:
                stored, source = {}, "group"
        positions = start_positions(ours, stored)
        for tp in partitions:
            if tp.topic == self.topic:
                tp.offset = positions[tp.partition]
        consumer.assign(partitions)
        self._health.assigned(ours)
        log.info(
            "assigned %s: %s",
            self.topic,
            ", ".join(
                f"p{p}@{stored[p]} ({source})" if p in stored else f"p{p}@group offset"
                for p in sorted(ours)
            )
            or "no partitions",
        )

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Let the in-flight commit finish (it commits its offsets), drop the open batch.

        Whoever is assigned the partitions next resumes from the table, so dropping is safe.
        """
        revoked = {tp.partition for tp in partitions if tp.topic == self.topic}
        log.info("partitions revoked: %s", sorted(revoked))
        retained = {
            tp.partition for tp in self._consumer.assignment() if tp.topic == self.topic
        } - revoked
        failed: list[SealedBatch] = []
        if self._in_flight is not None and not self.hung:  # hung: closing, nothing to wait for
            sealed, future, began = self._in_flight
            try:
                outcome = self._outcome(sealed, future, began)
            except CommitHungError:
                raise
            except Exception as exc:
                self._in_flight = None
                log.error(
                    "Iceberg commit failed during a rebalance (it will be read again): %s", exc
                )
                self._health.commit_failed(f"Iceberg commit failed: {type(exc).__name__}: {exc}")
                failed.append(sealed)
            else:
                self._in_flight = None
                self._committed(sealed, outcome)
        self._rewind(failed, keep=retained)
        self._set_pending(None)
        self._health.assigned(sorted(retained))

    # -- lag -------------------------------------------------------------------------------

    def _update_lag(self) -> None:
        self._next_lag = self._clock() + LAG_INTERVAL_S
        try:
            assigned = [tp for tp in self._consumer.assignment() if tp.topic == self.topic]
            positions = self._consumer.position(assigned) if assigned else []
            lag: dict[int, int | None] = {}
            for tp in positions:
                probe = TopicPartition(self.topic, tp.partition)
                _, high = self._consumer.get_watermark_offsets(probe, cached=True)
                if high < 0:
                    _, high = self._consumer.get_watermark_offsets(probe, timeout=1.0)
                lag[tp.partition] = high - tp.offset if tp.offset >= 0 and high >= 0 else None
        except KafkaException as exc:
            log.debug("lag unavailable: %s", exc)
            return
        self._health.set_lag(lag)
