"""IcebergWriter end to end in-process: fake Kafka, registry and dead-letter producer, real Iceberg.

The table is a real pyiceberg table on the in-memory catalog of test_consumer_sink, so what is
asserted is what a reader of the table would see: every record once, at its offset, and the
offsets in the snapshot summary. Commits run inline (no worker thread) and time is a fake clock
that moves when a poll waits, so every test is deterministic.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pyiceberg.table import Table

from k2.consumer.batch import BatchPolicy, SealedBatch
from k2.consumer.config import DEFAULT_COMMIT_DEADLINE_S
from k2.consumer.deadletter import DeadLetterQueue, DeliveryCallback
from k2.consumer.decoding import RecordDecoder
from k2.consumer.health import HealthLimits, HealthState
from k2.consumer.registry import WriterSchemas
from k2.consumer.sink import CommitOutcome, IcebergSink
from k2.consumer.writer import (
    CommitHungError,
    GroupCommitReport,
    IcebergWriter,
    KafkaLostError,
    KafkaMessage,
    RebalanceCallback,
)
from k2.feed.badinput import garbage_value, implausible_trade, unknown_schema_id_value
from k2.feed.serializer import TradeSerializer
from k2.iceberg.table import ensure_table
from k2.model.names import CONSUMER_GROUP, ICEBERG_TABLE, TOPIC
from k2.model.schema import trade_v2_schema_str
from k2.model.trade import Trade
from tests.unit.clocks import ManualClock
from tests.unit.test_consumer_sink import MemoryCatalog, table_rows, trades

SCHEMA_ID = 7
WALL = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)

_P = ParamSpec("_P")
_T = TypeVar("_T")


class InlineExecutor(Executor):
    """Runs a commit at submit, so the test controls exactly when it happens."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class _HeldFuture(Future[_T]):
    def result(self, timeout: float | None = None) -> _T:
        if not self.done():
            if timeout == 0:
                raise FutureTimeout  # a wait whose deadline has passed gives up at once
            raise AssertionError("the writer blocked on a commit that is still in flight")
        return super().result(timeout)


class HeldExecutor(Executor):
    """Runs a commit only when the test says so: a commit that is still in flight."""

    def __init__(self) -> None:
        self.held: list[Callable[[], None]] = []

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = _HeldFuture()
        self.held.append(lambda: future.set_result(fn(*args, **kwargs)))
        return future

    def release(self) -> None:
        for run in self.held:
            run()
        self.held.clear()


@dataclasses.dataclass
class Message:
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = None
    _headers: list[tuple[str, bytes]] | None = None

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers


class Crash(Exception):
    """The process dies here."""


class Hang(Exception):
    """The process would block here forever."""


class FakeKafka:
    """Topic logs plus one consumer's group state: positions, committed offsets, rebalances."""

    def __init__(
        self, clock: ManualClock, events: list[str], partitions: tuple[int, ...] = (0,)
    ) -> None:
        self.close_waits_for: threading.Event | None = None
        self.clock = clock
        self.events = events
        self.logs: dict[int, list[Message]] = {p: [] for p in partitions}
        self.committed: dict[int, int] = {}
        self.positions: dict[int, int] = {}
        self.assigned: list[int] = []
        self.pending_assignment: list[int] | None = list(partitions)
        self.on_assign: RebalanceCallback | None = None
        self.on_revoke: RebalanceCallback | None = None
        self.seeks: list[tuple[int, int]] = []
        self.delivered = 0
        self.crash_on_commit = False
        self.fail_commit = False
        self.coordinator_away = False
        self.on_commit: Callable[[KafkaError | None, list[TopicPartition]], None] | None = None
        self._commit_answers: list[tuple[KafkaError | None, list[TopicPartition]]] = []
        self.closed = False

    def send(self, partition: int, value: bytes | None, key: bytes | None = None) -> int:
        log = self.logs[partition]
        log.append(Message(partition, len(log), value, key, [("trace", b"abc")]))
        return len(log) - 1

    def restart(self) -> FakeKafka:
        """A new consumer process of the same group on the same topic."""
        other = FakeKafka(self.clock, self.events, tuple(self.logs))
        other.logs, other.committed = self.logs, dict(self.committed)
        other.on_commit = self.on_commit
        return other

    # -- the consumer API --

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def _rebalance(self) -> None:
        if self.pending_assignment is None:
            return
        new, self.pending_assignment = self.pending_assignment, None
        if self.assigned and self.on_revoke is not None:
            self.on_revoke(self, [TopicPartition(TOPIC, p) for p in self.assigned])
        self.assigned, self.positions = [], {}
        partitions = [TopicPartition(TOPIC, p, OFFSET_INVALID) for p in new]
        assert self.on_assign is not None
        self.on_assign(self, partitions)

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.assigned.append(tp.partition)
            start = tp.offset if tp.offset >= 0 else self.committed.get(tp.partition, 0)
            self.positions[tp.partition] = start

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[KafkaMessage]:
        self._rebalance()
        self._answer_commits()
        out: list[KafkaMessage] = []
        for partition in self.assigned:
            position = self.positions[partition]
            chunk = self.logs[partition][position : position + num_messages - len(out)]
            out.extend(chunk)
            self.positions[partition] = position + len(chunk)
        self.delivered += len(out)
        self.clock.now += 0.001 if out else max(timeout, 0.0)
        return out

    def seek(self, partition: TopicPartition) -> None:
        assert partition.partition in self.assigned
        self.seeks.append((partition.partition, partition.offset))
        self.positions[partition.partition] = partition.offset

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        """Like librdkafka: a synchronous commit waits for the coordinator, however long."""
        if self.crash_on_commit:
            raise Crash("killed between the Iceberg commit and the Kafka commit")
        if not asynchronous and self.coordinator_away:
            raise Hang("a synchronous commit waits for the coordinator without a deadline")
        self._commit_answers.append((None, offsets))
        if not asynchronous:
            self._answer_commits()

    def _answer_commits(self) -> None:
        """Deliver the coordinator's answers (librdkafka does it inside a poll)."""
        if self.coordinator_away:
            return
        answers, self._commit_answers = self._commit_answers, []
        for _, offsets in answers:
            error = KafkaError(KafkaError.REBALANCE_IN_PROGRESS) if self.fail_commit else None
            if error is None:
                self.events.append(
                    "kafka commit " + ",".join(f"{tp.partition}:{tp.offset}" for tp in offsets)
                )
                for tp in offsets:
                    self.committed[tp.partition] = tp.offset
            if self.on_commit is not None:
                self.on_commit(error, offsets)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in self.assigned]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(TOPIC, tp.partition, self.positions[tp.partition]) for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return 0, len(self.logs[partition.partition])

    def close(self) -> None:
        if self.close_waits_for is not None:  # no broker answers the goodbye (librdkafka#4519)
            self.close_waits_for.wait()
        self._answer_commits()  # librdkafka's close waits for outstanding commits
        if self.assigned and self.on_revoke is not None:
            self.on_revoke(self, [TopicPartition(TOPIC, p) for p in self.assigned])
        self.assigned = []
        self.closed = True


class FakeRegistry:
    def __init__(self) -> None:
        self.calls = 0
        self.down: Exception | None = None
        self.not_found_code = 40403

    def get_schema(self, schema_id: int) -> Schema:
        self.calls += 1
        if self.down is not None:
            raise self.down
        if schema_id == SCHEMA_ID:
            return Schema(trade_v2_schema_str(), "AVRO")
        raise SchemaRegistryError(404, self.not_found_code, f"Schema {schema_id} not found")

    def get_subjects(self) -> list[str]:
        if self.down is not None:
            raise self.down
        return [f"{TOPIC}-value"]


class FakeProducer:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.sent: list[dict[str, Any]] = []
        self._reports: list[DeliveryCallback] = []
        self.error: str | None = None
        self.refuse = 0

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: list[tuple[str, bytes | str | None]] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        if self.refuse:
            self.refuse -= 1
            raise KafkaException("Message size too large")
        self.sent.append(
            {"topic": topic, "key": key, "value": value, "headers": dict(headers or [])}
        )
        if on_delivery is not None:
            self._reports.append(on_delivery)

    def poll(self, timeout: float = -1) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        self.events.append(f"dlq flush {len(self._reports)}")
        for report in self._reports:
            report(self.error, None)
        self._reports.clear()
        return 0


class RecordingSink:
    """The real IcebergSink, logging each commit into the shared event list."""

    def __init__(self, table: Table, events: list[str]) -> None:
        self.inner = IcebergSink(table, topic=TOPIC, group=CONSUMER_GROUP, sleep=lambda _: None)
        self.events = events
        self.open = threading.Event()
        """Cleared: a commit blocks until it is set (a socket nobody answers)."""
        self.open.set()
        self.idle_s: float | None = None
        """Set: what the running commit says of its silence, instead of the real sink."""

    def stored_offsets(self, *, refresh: bool = True) -> dict[int, int]:
        return self.inner.stored_offsets(refresh=refresh)

    def commit_idle_s(self) -> float | None:
        return self.idle_s if self.idle_s is not None else self.inner.commit_idle_s()

    def commit(self, batch: SealedBatch) -> CommitOutcome:
        self.open.wait()
        self.events.append(f"iceberg commit {batch.size}")
        return self.inner.commit(batch)


class RunningClock(ManualClock):
    """A ManualClock that real time moves too (for a test that really waits)."""

    def __call__(self) -> float:
        return self.now + time.monotonic()


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        *,
        max_records: int = 4,
        partitions: tuple[int, ...] = (0,),
        executor: Executor | None = None,
        commit_deadline_s: float = DEFAULT_COMMIT_DEADLINE_S,
        clock: ManualClock | None = None,
        close_wait_s: float = 5.0,
    ) -> None:
        self.executor = executor or InlineExecutor()
        self.commit_deadline_s = commit_deadline_s
        self.clock = clock or ManualClock()
        self.close_wait_s = close_wait_s
        self.events: list[str] = []
        self.kafka = FakeKafka(self.clock, self.events, partitions)
        self.registry = FakeRegistry()
        self.producer = FakeProducer(self.events)
        self.catalog = MemoryCatalog(tmp_path / "warehouse")
        self.table = ensure_table(self.catalog)
        self.sleeps: list[float] = []
        self.max_records = max_records
        self.serialize = TradeSerializer(SCHEMA_ID)
        self.writer = self.new_writer()

    def new_writer(self) -> IcebergWriter:
        self.health = HealthState(HealthLimits(10.0, 30.0), clock=self.clock)
        self.health.table_loaded()
        self.sink = RecordingSink(self.catalog.load_table(ICEBERG_TABLE), self.events)
        writer = IcebergWriter(
            consumer=self.kafka,
            decoder=RecordDecoder(WriterSchemas(self.registry, clock=self.clock)),
            dead_letters=DeadLetterQueue(self.producer, f"{TOPIC}.dlq"),
            sink=self.sink,
            health=self.health,
            policy=BatchPolicy(self.max_records, 1.0),
            topic=TOPIC,
            executor=self.executor,
            clock=self.clock,
            wall_clock=lambda: WALL,
            sleep=self.sleeps.append,
            commit_deadline_s=self.commit_deadline_s,
            close_wait_s=self.close_wait_s,
        )
        self.kafka.subscribe([TOPIC], on_assign=writer._on_assign, on_revoke=writer._on_revoke)
        self.kafka.on_commit = GroupCommitReport(self.health, clock=self.clock)
        return writer

    def restart(self) -> None:
        """A crash: the writer is gone without a shutdown; a new process starts."""
        self.kafka = self.kafka.restart()
        self.writer = self.new_writer()

    def send_trades(self, items: list[Trade], partition: int = 0) -> None:
        for trade in items:
            self.kafka.send(partition, self.serialize(trade), trade.symbol.encode())

    def steps(self, n: int) -> None:
        for _ in range(n):
            self.writer.step()

    def drain(self, max_steps: int = 200, real_pause_s: float = 0.0) -> None:
        """Step until everything sent is in the table or dead-lettered and committed to Kafka.

        `real_pause_s` gives a real worker thread time to finish a commit between steps.
        """
        for _ in range(max_steps):
            self.writer.step()
            time.sleep(real_pause_s)
            ends = {p: len(log) for p, log in self.kafka.logs.items()}
            if all(self.kafka.committed.get(p, 0) >= end for p, end in ends.items()):
                return
        raise AssertionError(f"not drained: committed {self.kafka.committed}")

    def rows(self) -> list[tuple[int, int]]:
        return table_rows(self.table)

    def stored(self) -> dict[int, int]:
        return self.sink.stored_offsets()


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


# -- batching -----------------------------------------------------------------------------


def test_every_record_lands_once_with_its_offsets(h: Harness) -> None:
    h.send_trades(trades(10))

    h.drain()

    assert h.rows() == [(0, o) for o in range(10)]
    assert h.stored() == {0: 10}
    assert h.kafka.committed == {0: 10}
    assert [e for e in h.events if e.startswith("iceberg")] == [
        "iceberg commit 4",
        "iceberg commit 4",
        "iceberg commit 2",
    ]


def test_a_batch_closes_on_age_not_on_the_first_empty_poll(h: Harness) -> None:
    h.send_trades(trades(2))
    h.steps(1)  # consumes both, batch opens
    h.steps(2)  # empty polls, 0.25 s each: still younger than 1 s
    assert h.rows() == []

    h.steps(1)
    assert h.rows() == []

    h.steps(1)  # the poll waits only until the batch is 1 s old, then it closes

    assert h.rows() == [(0, 0), (0, 1)]
    assert h.clock.now == pytest.approx(100.001 + 1.0)


def test_an_idle_topic_commits_nothing(h: Harness) -> None:
    h.steps(50)

    assert h.events == []
    assert h.table.metadata.snapshots == []
    assert h.kafka.committed == {}


def test_kafka_commit_comes_after_dlq_flush_and_iceberg_commit(h: Harness) -> None:
    h.send_trades(trades(3))
    h.kafka.send(0, garbage_value())

    h.drain()

    assert h.events == ["dlq flush 1", "iceberg commit 4", "kafka commit 0:4"]


# -- dead letters -------------------------------------------------------------------------


def _bad_values(h: Harness, good: Trade) -> dict[str, bytes | None]:
    return {
        "wire-format": garbage_value(seed=3),
        "unknown-schema": unknown_schema_id_value(good),
        "avro-body": h.serialize(good)[:12],
        "validation": h.serialize(implausible_trade(good)),
        "tombstone": None,
    }


def test_bad_input_is_dead_lettered_and_the_rest_is_written(h: Harness) -> None:
    good = trades(4)
    bad = _bad_values(h, good[0])
    h.send_trades(good[:2])
    offsets = {kind: h.kafka.send(0, value, b"KEY") for kind, value in bad.items()}
    h.send_trades(good[2:])

    h.drain()

    assert h.rows() == [(0, 0), (0, 1), (0, 7), (0, 8)]
    assert h.stored() == {0: 9}
    letters = {m["headers"]["k2.source.offset"]: m for m in h.producer.sent}
    for kind, offset in offsets.items():
        letter = letters[str(offset).encode()]
        assert letter["topic"] == f"{TOPIC}.dlq"
        assert letter["key"] == b"KEY"
        assert letter["value"] == bad[kind]
        headers = letter["headers"]
        expected_kind = "wire-format" if kind == "tombstone" else kind
        assert headers["k2.error.kind"] == expected_kind.encode()
        assert headers["k2.source.topic"] == TOPIC.encode()
        assert headers["k2.source.partition"] == b"0"
        assert headers["trace"] == b"abc"  # the original headers are kept
        assert headers["k2.error"]
    assert (
        b"price=-1.00000000 is not positive"
        in letters[str(offsets["validation"]).encode()]["headers"]["k2.error"]
    )
    assert h.health.document()["dead_lettered"] == 5


def test_a_404_without_the_confluent_code_from_a_working_registry_is_unknown(h: Harness) -> None:
    h.registry.not_found_code = 0  # a registry that does not set 40403
    h.kafka.send(0, unknown_schema_id_value(trades(1)[0]))
    h.send_trades(trades(1, seed=4))

    h.drain()

    assert [m["headers"]["k2.error.kind"] for m in h.producer.sent] == [b"unknown-schema"]
    assert h.rows() == [(0, 1)]


def test_an_unknown_schema_id_costs_one_registry_request(h: Harness) -> None:
    good = trades(1)[0]
    for _ in range(5):
        h.kafka.send(0, unknown_schema_id_value(good))
    h.send_trades([good])

    h.drain()

    assert h.registry.calls == 2  # the unknown id once, the real one once
    assert len(h.producer.sent) == 5


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionError("connection refused"),
        SchemaRegistryError(503, 50301, "service unavailable"),
        SchemaRegistryError(404, -1, "HTTP 404 Not Found (wrong base URL?)"),
    ],
    ids=["connection", "5xx", "404-without-40403"],
)
def test_a_registry_that_cannot_answer_holds_records_back(h: Harness, failure: Exception) -> None:
    items = trades(3)
    h.registry.down = failure
    h.send_trades(items)

    h.steps(5)

    assert h.producer.sent == []
    assert h.rows() == []
    assert h.kafka.seeks[-1] == (0, 0)
    assert any("schema registry failing" in r for r in h.health.reasons())
    assert h.sleeps  # backed off instead of spinning

    h.registry.down = None
    h.drain()

    assert h.rows() == [(0, 0), (0, 1), (0, 2)]
    assert h.producer.sent == []
    assert not any("registry" in r for r in h.health.reasons())


def test_a_registry_outage_mid_batch_keeps_the_records_before_it(h: Harness) -> None:
    h.send_trades(trades(2))
    h.steps(1)  # schema cached, two rows in the open batch
    h.kafka.send(0, unknown_schema_id_value(trades(1)[0], schema_id=99))
    h.send_trades(trades(1, seed=5))
    h.registry.down = ConnectionError("down")

    h.steps(1)

    assert h.kafka.seeks == [(0, 2)]
    h.registry.down = None
    h.drain()
    assert h.rows() == [(0, 0), (0, 1), (0, 3)]
    assert len(h.producer.sent) == 1


# -- failures before the Iceberg commit ---------------------------------------------------


def test_a_failed_iceberg_commit_is_read_again_and_written_once(h: Harness) -> None:
    h.send_trades(trades(6))
    h.catalog.fail_commits = [OSError("S3 unavailable")]

    h.drain()

    assert h.rows() == [(0, o) for o in range(6)]
    assert (0, 0) in h.kafka.seeks
    assert h.health.document()["abandoned_batches"] == 2  # the failed one and the one behind it
    assert "S3 unavailable" in h.health.document()["last_error"]["message"]


def test_health_names_a_failing_iceberg_commit_until_the_retry_lands(h: Harness) -> None:
    h.send_trades(trades(6))
    h.catalog.fail_commits = [OSError("S3 unavailable")]
    h.steps(2)  # batch 0-3 fails

    assert any(
        r.startswith("Iceberg commits failing") and "S3 unavailable" in r
        for r in h.health.reasons()
    ), h.health.reasons()

    h.drain()
    assert not [r for r in h.health.reasons() if "Iceberg" in r]


def test_a_lost_commit_answer_does_not_duplicate(h: Harness) -> None:
    h.send_trades(trades(4))
    h.catalog.lose_responses = 1

    h.drain()

    assert h.rows() == [(0, o) for o in range(4)]
    assert h.kafka.committed == {0: 4}


def test_unacknowledged_dead_letters_fail_their_batch(h: Harness) -> None:
    h.send_trades(trades(3))
    h.kafka.send(0, garbage_value())
    h.producer.error = "broker down"
    h.steps(1)
    assert h.rows() == []
    assert h.kafka.seeks == [(0, 0)]

    h.producer.error = None
    h.drain()

    assert h.rows() == [(0, 0), (0, 1), (0, 2)]
    assert len(h.producer.sent) == 2  # sent again with the batch; never lost


def test_a_dead_letter_refused_by_the_producer_fails_its_batch(h: Harness) -> None:
    h.send_trades(trades(2))
    h.kafka.send(0, garbage_value())
    h.producer.refuse = 1

    h.drain()

    assert h.rows() == [(0, 0), (0, 1)]
    assert len(h.producer.sent) == 1
    assert "Message size too large" in h.health.document()["last_error"]["message"]


def test_a_failed_kafka_commit_is_not_fatal(h: Harness) -> None:
    h.send_trades(trades(4))
    h.kafka.fail_commit = True
    h.steps(3)  # batch, commit to Iceberg and send the Kafka commit, hear its answer
    assert h.rows() == [(0, o) for o in range(4)]
    assert h.kafka.committed == {}
    assert h.health.document()["group_commit_failures"] == 1
    assert "Kafka offset commit failed" in h.health.document()["last_error"]["message"]

    h.kafka.fail_commit = False
    h.send_trades(trades(4, seed=2))
    h.drain()

    assert h.kafka.committed == {0: 8}


def test_the_loop_keeps_polling_while_the_group_coordinator_is_away(h: Harness) -> None:
    """Kafka paused: the Kafka commit must not hold the poll loop (it did, for minutes)."""
    h.kafka.coordinator_away = True
    h.send_trades(trades(8))
    h.steps(4)

    assert h.rows() == [(0, o) for o in range(8)]  # the table moves on
    assert h.kafka.committed == {}
    assert h.health.document()["last_poll_age_s"] < 1.0

    h.kafka.coordinator_away = False
    h.steps(1)
    assert h.kafka.committed == {0: 8}
    assert h.health.document()["last_group_commit_age_s"] is not None


# -- restarts: one batch through each crash point -----------------------------------------


def test_crash_before_the_iceberg_commit(h: Harness) -> None:
    h.send_trades(trades(6))
    h.steps(1)  # batch 0-3 committed; 4-5 are read into the open batch
    h.steps(1)

    h.restart()
    h.drain()

    assert h.rows() == [(0, o) for o in range(6)]


def test_crash_between_the_iceberg_and_the_kafka_commit(h: Harness) -> None:
    h.send_trades(trades(6))
    h.kafka.crash_on_commit = True
    with pytest.raises(Crash):
        h.steps(2)  # batch 0-3 is committed to Iceberg; the Kafka commit dies
    assert h.stored() == {0: 4}
    assert h.kafka.committed == {}

    h.restart()
    h.drain()

    assert h.rows() == [(0, o) for o in range(6)]
    assert h.kafka.seeks == []
    assert h.kafka.delivered == 2  # resumed at the table's offset 4, not the group's 0


def test_crash_after_both_commits(h: Harness) -> None:
    h.send_trades(trades(4))
    h.drain()
    h.send_trades(trades(2, seed=9))

    h.restart()
    h.drain()

    assert h.rows() == [(0, o) for o in range(6)]
    assert h.kafka.delivered == 2


# -- rebalances and shutdown --------------------------------------------------------------


def test_assignment_starts_at_the_table_offsets(tmp_path: Path) -> None:
    h = Harness(tmp_path, partitions=(0, 1))
    h.send_trades(trades(3), partition=0)
    h.send_trades(trades(3, seed=1), partition=1)
    h.sink.inner.commit(_sealed({0: (0, 2)}, h))  # the table already holds p0 offsets 0-1
    h.kafka.committed = {0: 1, 1: 1}  # the group lags the table on p0

    h.drain()

    assert h.rows() == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2)]


def _sealed(spans: dict[int, tuple[int, int]], h: Harness) -> SealedBatch:
    from k2.consumer.batch import Batch

    batch = Batch()
    for partition, (start, end) in spans.items():
        for offset in range(start, end):
            batch.add_trade(
                trades(1, seed=offset + 100 * partition)[0], partition, offset, h.clock()
            )
    return batch.seal()


def test_a_rebalance_drops_the_open_batch_and_loses_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_records=100, partitions=(0, 1))
    h.send_trades(trades(5), partition=0)
    h.send_trades(trades(5, seed=1), partition=1)
    h.steps(1)  # all ten in the open batch

    h.kafka.pending_assignment = [1]  # this member keeps partition 1 only
    h.steps(1)
    assert h.rows() == []
    for _ in range(10):
        h.steps(1)

    assert h.rows() == [(1, o) for o in range(5)]
    assert h.health.document()["assigned_partitions"] == [1]
    # Partition 0's records were neither written nor marked done: its next owner reads them.
    assert h.stored() == {1: 5}
    assert 0 not in h.kafka.committed


def test_commits_on_a_worker_thread_while_the_next_batch_is_read(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_records=50, partitions=(0, 1, 2), executor=ThreadPoolExecutor(1))
    for partition in (0, 1, 2):
        h.send_trades(trades(400, seed=partition), partition=partition)

    h.drain(max_steps=2000, real_pause_s=0.005)
    h.writer.shutdown(commit=True)

    assert h.rows() == [(p, o) for p in (0, 1, 2) for o in range(400)]
    assert h.stored() == {0: 400, 1: 400, 2: 400}


def test_shutdown_commits_the_open_batch_and_closes(h: Harness) -> None:
    h.send_trades(trades(2))
    h.steps(1)

    h.writer.shutdown(commit=True)

    assert h.rows() == [(0, 0), (0, 1)]
    assert h.kafka.committed == {0: 2}
    assert h.kafka.closed
    assert "shutting down" in h.health.reasons()


def test_health_follows_the_writer(h: Harness) -> None:
    assert "has not polled Kafka yet" in h.health.reasons()
    h.send_trades(trades(4))
    h.drain()

    document = h.health.document()
    assert document["healthy"] is True
    assert (document["consumed"], document["written"], document["commits"]) == (4, 4, 1)
    assert document["lag"] == {"0": 0}


def _hang_a_commit(h: Harness, held: HeldExecutor, count: int) -> list[Trade]:
    """Start a commit of `count` trades that does not end (held)."""
    sent = trades(count)
    h.send_trades(sent)
    h.steps(1)
    h.clock.now += 1.5
    h.steps(1)
    assert len(held.held) == 1
    return sent


def test_a_commit_past_its_deadline_ends_the_writer_and_a_restart_stores_each_trade_once(
    tmp_path: Path,
) -> None:
    """A commit that never ends (a socket nobody answers): the writer gives up at the deadline.

    Its shutdown must not wait for the stuck commit. Whether that commit lands after the
    restart or never, each trade is in the table once.
    """
    held = HeldExecutor()
    h = Harness(tmp_path, max_records=10, executor=held)
    sent = _hang_a_commit(h, held, 6)
    h.clock.now += DEFAULT_COMMIT_DEADLINE_S - 1
    h.steps(1)  # not yet: health says the commit is running too long, the loop goes on
    assert any("Iceberg commit" in reason for reason in h.health.reasons())

    h.clock.now += 1.1
    silence = r"6 records .* no progress for 30 s \(K2_COMMIT_DEADLINE_S; running 30\.6 s\)"
    with pytest.raises(CommitHungError, match=silence):
        h.steps(1)
    assert h.writer.hung
    h.writer.shutdown(commit=True)  # returns: it neither waits for nor repeats the commit
    assert h.rows() == []

    h.executor = InlineExecutor()
    h.restart()
    h.drain()
    held.release()  # the stuck commit lands after all, behind the restarted writer's

    assert h.rows() == [(0, o) for o in range(len(sent))]


def test_a_commit_that_keeps_progressing_outlives_the_deadline_and_silence_ends_it(
    tmp_path: Path,
) -> None:
    """The deadline times silence, not length.

    A slow commit that still moves (an hour of message ids read after a restart on a slow
    machine) is waited for; one that goes quiet is not.
    """
    held = HeldExecutor()
    h = Harness(tmp_path, max_records=10, executor=held)
    sent = _hang_a_commit(h, held, 6)
    for _ in range(4):  # two minutes, the sink reporting progress a second ago each time
        h.sink.idle_s = 1.0
        h.clock.now += DEFAULT_COMMIT_DEADLINE_S
        h.steps(1)
    assert not h.writer.hung

    h.sink.idle_s = DEFAULT_COMMIT_DEADLINE_S + 0.1
    with pytest.raises(CommitHungError, match=r"no progress for 30 s .*running 1[23]\d\.\d s"):
        h.steps(1)
    held.release()
    h.writer.shutdown(commit=True)
    assert len(h.rows()) == len(sent)


def test_with_no_broker_known_for_too_long_the_writer_exits_to_bootstrap_again(
    h: Harness,
) -> None:
    """The client can drop every broker and never reconnect (confluentinc/librdkafka#5301)."""
    h.health.kafka_heard(answered=True, brokers={"kafka:9092": "UP"})
    h.clock.now += 60.0
    h.steps(1)  # a known broker, silent (paused): health's concern, not a reason to exit
    h.health.kafka_heard(answered=False, brokers={})

    with pytest.raises(KafkaLostError, match=r"no Kafka broker known .* \(K2_KAFKA_LOST_S=15\)"):
        h.steps(1)


def test_a_writer_that_gives_up_does_not_wait_for_ever_to_leave_the_group(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Kafka client's close can wait for ever with no broker (confluentinc/librdkafka#4519).

    A writer past K2_KAFKA_LOST_S then never exited: the restart that would recover never came.
    """
    h = Harness(tmp_path, close_wait_s=0.2)
    h.send_trades(trades(2))
    h.steps(1)
    h.kafka.close_waits_for = threading.Event()
    h.health.kafka_heard(answered=False, brokers={})
    h.clock.now += 60.0
    with pytest.raises(KafkaLostError):
        h.steps(1)

    began = time.monotonic()
    h.writer.shutdown(commit=False)
    waited = time.monotonic() - began

    assert "leaving without it" in caplog.text
    assert 0.2 <= waited < 2.0
    h.kafka.close_waits_for.set()  # let the left-behind close end with the test


def test_a_full_batch_waits_for_the_running_commit_only_until_its_deadline(
    tmp_path: Path,
) -> None:
    """The one place the loop blocks on a commit (a full batch) ends at the deadline too."""
    with ThreadPoolExecutor(1) as pool:
        # Real time passes during the blocking wait: the writer's clock must see it.
        h = Harness(
            tmp_path, max_records=4, executor=pool, commit_deadline_s=0.3, clock=RunningClock()
        )
        h.sink.open.clear()
        h.send_trades(trades(8))
        h.steps(1)  # full: its commit starts and blocks
        began = time.monotonic()
        try:
            with pytest.raises(CommitHungError):
                h.steps(1)  # full again: waits for the first, at most 0.3 s
        finally:
            h.sink.open.set()
    assert time.monotonic() - began < 5


def test_a_due_batch_keeps_filling_while_the_previous_commit_runs(tmp_path: Path) -> None:
    held = HeldExecutor()
    h = Harness(tmp_path, max_records=10, executor=held)
    sent = trades(14)
    h.send_trades(sent[:9])
    h.steps(1)
    h.clock.now += 1.5
    h.steps(1)  # due, nothing in flight: its commit starts (and is held)
    assert len(held.held) == 1
    h.send_trades(sent[9:12])
    h.steps(1)
    h.clock.now += 1.5
    h.steps(1)  # due, but the first commit still runs: it stays open, nothing blocks
    h.send_trades(sent[12:])
    h.steps(1)
    assert len(held.held) == 1
    held.release()
    h.steps(1)  # the first commit is reaped, the grown batch goes at once
    assert "iceberg commit 9" in h.events
    held.release()
    assert "iceberg commit 5" in h.events


# -- replays: the same trade (message_id) at another offset is stored once ----------------


def test_a_replay_in_a_later_batch_is_stored_once(h: Harness) -> None:
    original = trades(4)
    h.send_trades(original)
    h.drain()
    h.send_trades([original[1], *trades(2, seed=3), original[3]])  # a resend, new trades

    h.drain()

    assert len(h.rows()) == 6
    assert h.stored() == {0: 8}  # the offsets move past the replays
    assert h.health.document()["replayed_rows"] == 2


def test_a_replay_within_one_batch_is_stored_once(h: Harness) -> None:
    first, second = trades(2)
    h.send_trades([first, first, second, first])

    h.drain()

    assert h.rows() == [(0, 0), (0, 2)]


def test_a_replay_after_a_restart_is_stored_once(h: Harness) -> None:
    original = trades(4)
    h.send_trades(original)
    h.drain()

    h.restart()  # a new process: it knows the ids only from the table
    h.send_trades(original)
    h.drain()

    assert h.rows() == [(0, o) for o in range(4)]


def test_a_replay_is_stored_once_after_another_writer_committed(h: Harness) -> None:
    original = trades(4)
    h.send_trades(original)
    h.drain()
    other = IcebergSink(h.catalog.load_table(ICEBERG_TABLE), topic=TOPIC, group="other")
    other.commit(_sealed({1: (0, 2)}, h))  # another writer: the head moves on

    h.send_trades(original[:2])
    h.drain()

    assert len(h.rows()) == 6  # 4 + the other writer's 2; the replays once
