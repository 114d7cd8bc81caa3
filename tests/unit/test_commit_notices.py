"""Commit notices: the writer announces each commit, the API's follower reloads at once.

Covered: the notice's format, the writer side (never failing a commit), the listener (wakes
on a notice, not live after a Kafka error), and the follower loading once per notice instead
of on its timer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
from confluent_kafka import OFFSET_END, KafkaError, TopicPartition
from pyiceberg.catalog import Catalog
from pyiceberg.table.snapshots import Operation

from k2.api.commit_listener import QUIET_AFTER_ERROR_S, CommitListener, NoticeSource
from k2.api.iceberg_repository import IcebergTradeRepository
from k2.api.settings import Settings
from k2.consumer.config import ConfigError, load_config
from k2.consumer.notices import CommitNotices
from k2.model.commit_notice import CommitNotice
from k2.model.names import COMMITS_TOPIC, TOPIC
from tests.unit.test_api_iceberg import FakeCatalog, FakeTable, make_trade
from tests.unit.test_consumer_writer import FakeProducer


def test_a_notice_round_trips_and_anything_else_is_ignored() -> None:
    notice = CommitNotice("market_data.trades", 42)
    assert CommitNotice.decode(notice.encode()) == notice
    for value in (None, b"", b"not json", b'{"table": "t"}', b'{"snapshot_id": "x"}'):
        assert CommitNotice.decode(value) is None


def test_the_commits_topic_follows_the_trades_topic() -> None:
    assert f"{TOPIC}.commits" == COMMITS_TOPIC
    env = {
        "K2_KAFKA_BOOTSTRAP": "k:9092",
        "K2_SCHEMA_REGISTRY_URL": "http://r",
        "K2_ICEBERG_URI": "http://i",
        "K2_S3_ENDPOINT": "http://s",
        "K2_S3_ACCESS_KEY": "a",
        "K2_S3_SECRET_KEY": "s",
    }
    assert load_config(env).commits_topic == COMMITS_TOPIC
    assert load_config({**env, "K2_KAFKA_TOPIC": "x"}).commits_topic == "x.commits"
    with pytest.raises(ConfigError, match="K2_COMMITS_TOPIC"):
        load_config({**env, "K2_COMMITS_TOPIC": TOPIC})
    api = Settings.from_env({"K2_API_KEY": "k", "K2_KAFKA_BOOTSTRAP": "k:9092"})
    assert (api.kafka_bootstrap, api.commits_topic) == ("k:9092", COMMITS_TOPIC)
    assert Settings.from_env({"K2_API_KEY": "k"}).kafka_bootstrap is None


def test_the_writer_side_sends_one_notice_per_commit_and_never_raises() -> None:
    producer = FakeProducer([])
    notices = CommitNotices(producer, "t.commits", "market_data.trades")
    notices.announce(7)
    assert producer.sent == [
        {
            "topic": "t.commits",
            "key": b"market_data.trades",
            "value": CommitNotice("market_data.trades", 7).encode(),
            "headers": {},
        }
    ]
    producer.flush()  # delivered
    producer.refuse = 1  # refused at once
    notices.announce(8)
    producer.error = "broker down"  # reported lost
    notices.announce(9)
    producer.flush()
    assert (notices.sent, notices.failed) == (2, 2)


class FakeMessage:
    def __init__(self, value: bytes | None = None, error: KafkaError | None = None) -> None:
        self._value = value
        self._error = error

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> KafkaError | None:
        return self._error


class FakeSource:
    """Hands out queued messages, one per poll; records what was assigned."""

    def __init__(self) -> None:
        self.queue: list[FakeMessage] = []
        self.assigned: list[TopicPartition] = []
        self.closed = False
        self._lock = threading.Lock()

    def push(self, message: FakeMessage) -> None:
        with self._lock:
            self.queue.append(message)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def poll(self, timeout: float = -1) -> Any:
        with self._lock:
            if self.queue:
                return self.queue.pop(0)
        time.sleep(0.005)
        return None

    def close(self) -> None:
        self.closed = True


def _eventually(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _listening(
    source: FakeSource, clock: Callable[[], float] = time.monotonic
) -> tuple[CommitListener, list[Callable[[KafkaError], None]], threading.Event, threading.Thread]:
    handlers: list[Callable[[KafkaError], None]] = []

    def open_source(on_error: Callable[[KafkaError], None]) -> NoticeSource:
        handlers.append(on_error)
        return source

    listener = CommitListener(open_source, "t.commits", clock)
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), daemon=True)
    thread.start()
    _eventually(lambda: listener.live, "the listener to start")
    return listener, handlers, stop, thread


def test_the_listener_follows_partition_0_from_its_end_and_wakes_on_a_notice() -> None:
    source = FakeSource()
    listener, _, stop, thread = _listening(source)
    try:
        assigned = source.assigned[0]
        assert (assigned.topic, assigned.partition, assigned.offset) == (
            "t.commits",
            0,
            OFFSET_END,
        )
        assert not listener.wait(0.05)
        source.push(FakeMessage(b"garbage"))
        source.push(FakeMessage(CommitNotice("market_data.trades", 5).encode()))
        assert listener.wait(5)
        assert (listener.received, listener.last) == (1, CommitNotice("market_data.trades", 5))
    finally:
        stop.set()
        thread.join(5)
    assert source.closed
    assert not listener.live


def test_after_a_kafka_error_the_listener_is_not_live_for_a_while() -> None:
    now = [1000.0]
    source = FakeSource()
    listener, handlers, stop, thread = _listening(source, lambda: now[0])
    try:
        handlers[0](KafkaError(KafkaError._ALL_BROKERS_DOWN))
        assert not listener.live
        now[0] += QUIET_AFTER_ERROR_S
        assert listener.live
        source.push(FakeMessage(error=KafkaError(KafkaError._PARTITION_EOF)))  # not an error
        _eventually(lambda: not source.queue, "the end-of-partition event to be read")
        assert listener.live
    finally:
        stop.set()
        thread.join(5)


def test_with_notices_the_follower_loads_once_per_commit_not_on_its_timer() -> None:
    table = FakeTable()
    table.commit(Operation.APPEND, [make_trade(1)])
    catalog = FakeCatalog(table)
    source = FakeSource()
    listener = CommitListener(lambda _: source, "t.commits")
    repo = IcebergTradeRepository(
        lambda: cast(Catalog, catalog), table_max_age_s=0.01, notices=listener
    )
    stop = threading.Event()
    # A fallback interval far beyond the test: every load after the first is a notice's.
    worker = threading.Thread(target=repo.follow, args=(stop, 60.0), daemon=True)
    worker.start()
    try:
        _eventually(lambda: listener.live and repo.replica.latest is not None, "the first load")
        loads = catalog.loads
        time.sleep(0.1)  # ten max ages: no request and no notice, so no load
        assert catalog.loads == loads
        table.commit(Operation.APPEND, [make_trade(2)])
        source.push(FakeMessage(CommitNotice("market_data.trades", 2).encode()))
        _eventually(
            lambda: repo.replica.latest is not None and repo.replica.latest.rows.num_rows == 2,
            "the notice's commit in the replica",
        )
        assert catalog.loads == loads + 1
    finally:
        stop.set()
        worker.join(5)
    assert not worker.is_alive()
