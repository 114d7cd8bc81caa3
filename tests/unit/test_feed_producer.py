"""FeedProducer against an in-memory Kafka producer: ledger, pacing, failures that raise."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from k2.feed.badinput import (
    UNKNOWN_SCHEMA_ID,
    garbage_value,
    implausible_trade,
    truncated_value,
    unknown_schema_id_value,
)
from k2.feed.generator import generate_frames
from k2.feed.ledger import Ledger
from k2.feed.producer import DeliveryError, FeedProducer, KafkaProducer, producer_config
from k2.feed.serializer import TradeSerializer
from k2.model.binance import MalformedFrameError, from_binance_frame
from k2.model.codec import AvroBodyError, decode_body, decode_trade
from k2.model.names import TOPIC
from k2.model.trade import Trade
from k2.model.validation import validate
from k2.model.wire import split_wire
from tests.unit.clocks import ManualClock

WALL_START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeClock(ManualClock):
    """Monotonic and wall clock in one, moving only when the test or a poll moves it."""

    def __init__(self) -> None:
        super().__init__(500.0)

    def wall(self) -> datetime:
        return WALL_START + timedelta(seconds=self.now - 500.0)


class FakeMessage:
    def __init__(self, partition: int | None, offset: int | None) -> None:
        self._partition = partition
        self._offset = offset

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset


class FakeProducer:
    """An in-memory confluent_kafka.Producer: partitions by key, reports on poll and flush.

    `failing` holds the indexes (0-based, in produce order) whose report is an error;
    `stuck` the indexes that never get a report; `full_once` the indexes whose first
    produce() raises BufferError, as librdkafka's full queue does.
    """

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        partitions: int = 3,
        failing: frozenset[int] = frozenset(),
        stuck: frozenset[int] = frozenset(),
        full_once: frozenset[int] = frozenset(),
    ) -> None:
        self.clock = clock
        self.partitions = partitions
        self.failing = failing
        self.stuck = stuck
        self.full_once = set(full_once)
        self.messages: list[tuple[str, bytes | None, bytes | None, float | None]] = []
        self.next_offset = [0] * partitions
        self.pending: list[tuple[Callable[[Any, Any], None], Any, FakeMessage]] = []
        self.polls: list[float] = []
        self.never_reported = 0

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        index = len(self.messages)
        if index in self.full_once:
            self.full_once.discard(index)
            raise BufferError("Local: Queue full")
        self.messages.append((topic, key, value, self.clock.now if self.clock else None))
        partition = zlib.crc32(key or b"") % self.partitions
        offset = self.next_offset[partition]
        self.next_offset[partition] += 1
        error = KafkaError(KafkaError._MSG_TIMED_OUT) if index in self.failing else None
        assert on_delivery is not None
        if index in self.stuck:
            self.never_reported += 1
        else:
            self.pending.append((on_delivery, error, FakeMessage(partition, offset)))

    def _deliver(self) -> int:
        ready, self.pending = self.pending, []
        for on_delivery, error, message in ready:
            on_delivery(error, message)
        return len(ready)

    def poll(self, timeout: float = -1) -> int:
        self.polls.append(timeout)
        if self.clock is not None and timeout > 0:
            self.clock.now += timeout
        return self._deliver()

    def flush(self, timeout: float = -1) -> int:
        self._deliver()
        return self.never_reported


def fake_serializer(trade: Trade) -> bytes:
    return f"value:{trade.message_id}".encode()


def trades(count: int, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> list[Trade]:
    ingested = WALL_START
    return [
        from_binance_frame(frame, ingested)
        for frame in generate_frames(list(symbols), seed=3, count=count)
    ]


def feed_with(producer: FakeProducer, clock: FakeClock) -> FeedProducer:
    return FeedProducer(producer, fake_serializer, clock=clock, wall_clock=clock.wall)


def test_fake_is_a_kafka_producer() -> None:
    producer: KafkaProducer = FakeProducer()  # mypy checks the protocol here
    assert producer.flush(0) == 0


def test_every_acknowledged_trade_is_in_the_ledger_with_partition_and_offset() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock)
    feed = feed_with(producer, clock)
    sent = trades(20)
    summary = feed.send_trades(sent)
    assert summary.count == 20
    assert len(feed.ledger) == 20
    assert [entry.trade for entry in feed.ledger] == sent
    for entry, (topic, key, value, _) in zip(feed.ledger, producer.messages, strict=True):
        assert topic == TOPIC
        assert key == entry.symbol.encode("utf-8")
        assert value == fake_serializer(entry.trade)
        assert entry.partition == zlib.crc32(key) % 3
        assert entry.message_id == entry.trade.message_id
        assert entry.trade_id == entry.trade.trade_id
        assert entry.ack_wall.tzinfo is UTC
        assert entry.ack_monotonic >= entry.sent_monotonic
    offsets: dict[int, list[int]] = {}
    for entry in feed.ledger:
        offsets.setdefault(entry.partition, []).append(entry.offset)
    for partition_offsets in offsets.values():
        assert partition_offsets == list(range(len(partition_offsets)))
    assert set(feed.ledger.by_message_id()) == {trade.message_id for trade in sent}


def test_count_limits_the_run() -> None:
    clock = FakeClock()
    feed = feed_with(FakeProducer(clock), clock)
    assert feed.send_trades(iter(trades(10)), count=4).count == 4
    assert len(feed.ledger) == 4


def test_rate_paces_produce_calls_on_the_monotonic_clock() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock)
    feed = feed_with(producer, clock)
    summary = feed.send_trades(trades(5), rate=20)
    produced_at = [round(at - 500.0, 9) for *_, at in producer.messages if at is not None]
    assert produced_at == [0.0, 0.05, 0.1, 0.15, 0.2]
    assert summary.seconds == pytest.approx(0.2)
    assert summary.rate == pytest.approx(25.0)
    # The pacer waited by polling the producer, so reports kept flowing while it waited.
    assert any(timeout > 0 for timeout in producer.polls)


def test_pacing_never_asks_poll_to_wait_below_its_millisecond_resolution() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock)
    feed = feed_with(producer, clock)
    summary = feed.send_trades(trades(2000), rate=5000)  # 0.2 ms apart: sent in bursts
    assert summary.count == 2000
    assert summary.rate == pytest.approx(5000, rel=0.02)
    waits = [timeout for timeout in producer.polls if timeout > 0]
    assert waits
    assert min(waits) >= 0.001
    assert len(waits) <= 2000 / 25 + 1  # one wait per 5 ms burst at most, not per message


def test_ack_times_come_from_the_clocks_at_delivery() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock)
    feed = feed_with(producer, clock)
    feed.send_trades(trades(3), rate=10)
    entry = feed.ledger.entries[1]
    assert entry.sent_monotonic == pytest.approx(500.1)
    assert entry.ack_monotonic >= entry.sent_monotonic
    assert entry.ack_wall == WALL_START + timedelta(seconds=entry.ack_monotonic - 500.0)


def test_delivery_failures_raise_with_count_and_first_error() -> None:
    clock = FakeClock()
    feed = feed_with(FakeProducer(clock, failing=frozenset({1, 3})), clock)
    sent = trades(5)
    with pytest.raises(DeliveryError) as caught:
        feed.send_trades(sent)
    message = str(caught.value)
    assert message.startswith(f"2 of 5 deliveries to {TOPIC} failed; first: {sent[1].trade_id}")
    assert "Message timed out" in message
    assert [failure.message_id for failure in caught.value.failures] == [
        sent[1].message_id,
        sent[3].message_id,
    ]
    assert len(feed.ledger) == 3  # the acknowledged ones are still accounted for


def test_reports_missing_after_flush_raise() -> None:
    clock = FakeClock()
    feed = feed_with(FakeProducer(clock, stuck=frozenset({3, 4})), clock)
    with pytest.raises(DeliveryError, match="2 of 5 still unacknowledged"):
        feed.send_trades(trades(5))


def test_failures_of_an_earlier_run_do_not_fail_the_next() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock, failing=frozenset({0}))
    feed = feed_with(producer, clock)
    with pytest.raises(DeliveryError):
        feed.send_trades(trades(2))
    assert feed.send_trades(trades(2)).count == 2


def test_a_full_local_queue_is_waited_out_not_dropped() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock, full_once=frozenset({2}))
    feed = feed_with(producer, clock)
    assert feed.send_trades(trades(5)).count == 5
    assert len(producer.messages) == 5
    assert len(feed.ledger) == 5


def test_frames_are_mapped_at_send_time() -> None:
    clock = FakeClock()
    feed = feed_with(FakeProducer(clock), clock)
    frames = list(generate_frames(["BTCUSDT"], seed=1, count=3))
    feed.send_frames(frames, rate=1)
    ingested = [entry.trade.ingestion_timestamp for entry in feed.ledger]
    assert ingested == [WALL_START + timedelta(seconds=n) for n in range(3)]
    assert [entry.trade.source_sequence for entry in feed.ledger] == [
        frame["data"]["t"] for frame in frames
    ]


def test_a_malformed_frame_stops_the_run_naming_its_position_after_flushing() -> None:
    clock = FakeClock()
    feed = feed_with(FakeProducer(clock), clock)
    frames = list(generate_frames(["BTCUSDT"], seed=1, count=4))
    frames[2]["data"]["p"] = "not a price"
    with pytest.raises(MalformedFrameError, match=r"^frame 3: malformed Binance trade frame"):
        feed.send_frames(frames)
    assert len(feed.ledger) == 2


def test_failures_are_told_with_the_error_that_stopped_the_run() -> None:
    clock = FakeClock()
    feed = feed_with(FakeProducer(clock, failing=frozenset({0})), clock)
    frames = list(generate_frames(["BTCUSDT"], seed=1, count=3))
    frames[1]["data"]["m"] = "yes"
    with pytest.raises(MalformedFrameError) as caught:
        feed.send_frames(frames)
    [note] = caught.value.__notes__
    assert note.startswith(f"also: 1 of 1 deliveries to {TOPIC} failed; first: BINANCE-1000000")
    assert len(feed.ledger) == 0


def test_send_raw_reports_where_kafka_put_it() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock)
    feed = feed_with(producer, clock)
    delivery = feed.send_raw(b"\x01garbage", key=b"BTCUSDT")
    assert (delivery.partition, delivery.offset) == (zlib.crc32(b"BTCUSDT") % 3, 0)
    assert producer.messages[0][:3] == (TOPIC, b"BTCUSDT", b"\x01garbage")
    assert len(feed.ledger) == 0


def test_send_raw_failure_raises() -> None:
    clock = FakeClock()
    feed = feed_with(FakeProducer(clock, failing=frozenset({0})), clock)
    with pytest.raises(DeliveryError, match=r"1 of 1 deliveries .* failed; first: raw message"):
        feed.send_raw(b"x")
    feed = feed_with(FakeProducer(clock, stuck=frozenset({0})), clock)
    with pytest.raises(DeliveryError, match="still unacknowledged"):
        feed.send_raw(b"x")


def test_ledger_dumps_to_jsonl_and_loads_back(tmp_path: Path) -> None:
    clock = FakeClock()
    feed = feed_with(FakeProducer(clock), clock)
    feed.send_trades(trades(6), rate=100)
    path = tmp_path / "ledger.jsonl"
    feed.ledger.dump_jsonl(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 6
    assert lines[0].startswith('{"message_id":')
    loaded = Ledger.load_jsonl(path)
    assert loaded.entries == feed.ledger.entries


def test_producer_config_is_idempotent_and_overridable() -> None:
    config = producer_config("127.0.0.1:9094", {"linger.ms": 0, "compression.type": "zstd"})
    assert config["bootstrap.servers"] == "127.0.0.1:9094"
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["max.in.flight.requests.per.connection"] <= 5
    assert config["linger.ms"] == 0
    assert config["compression.type"] == "zstd"


class OneIdRegistry:
    def register_schema(
        self, subject_name: str, schema: Any, normalize_schemas: bool = False
    ) -> int:
        return 7


def test_bad_inputs_fail_the_consumer_each_in_its_own_way() -> None:
    trade = trades(1)[0]
    garbage = garbage_value(seed=1)
    assert garbage == garbage_value(seed=1)
    assert garbage[0] != 0
    with pytest.raises(ValueError, match="magic byte"):
        split_wire(garbage)

    schema_id, body = split_wire(unknown_schema_id_value(trade))
    assert schema_id == UNKNOWN_SCHEMA_ID
    assert decode_trade(body) == trade  # only the id is wrong

    serializer = TradeSerializer.register(OneIdRegistry())
    schema_id, body = split_wire(truncated_value(serializer, trade))
    assert schema_id == 7
    with pytest.raises(AvroBodyError, match="EOFError"):
        decode_body(body)

    bad = implausible_trade(trade)
    assert validate(bad, now=WALL_START) == ["price=-1.00000000 is not positive"]
    with pytest.raises(ValueError, match="plausible"):
        implausible_trade(trade, price=trade.price)


def test_prepared_trades_go_out_paced_with_their_send_time_as_ingestion_time() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock)
    serializer = TradeSerializer(5)
    feed = FeedProducer(producer, serializer, clock=clock, wall_clock=clock.wall)
    prepared = [serializer.prepare(trade) for trade in trades(6)]

    summary = feed.send_prepared(prepared, rate=10)

    assert summary.count == 6
    assert [entry.trade.message_id for entry in feed.ledger] == [
        item.trade.message_id for item in prepared
    ]
    for number, entry in enumerate(feed.ledger):
        sent = WALL_START + timedelta(seconds=number / 10)
        assert entry.trade.ingestion_timestamp == sent
        assert entry.sent_monotonic == pytest.approx(500.0 + number / 10)
        # What went over the wire is the trade the ledger holds, send time included.
        value = producer.messages[number][2]
        assert value == serializer(entry.trade)


def test_prepared_trades_that_fail_are_told_not_ledgered() -> None:
    clock = FakeClock()
    producer = FakeProducer(clock, failing=frozenset({1}), stuck=frozenset({3}))
    serializer = TradeSerializer(5)
    feed = FeedProducer(producer, serializer, clock=clock, wall_clock=clock.wall)
    prepared = [serializer.prepare(trade) for trade in trades(5)]

    with pytest.raises(DeliveryError, match="1 of 5 deliveries") as caught:
        feed.send_prepared(prepared)

    assert caught.value.failures[0].message_id == prepared[1].trade.message_id
    assert caught.value.undelivered == 1
    assert len(feed.ledger) == 3
