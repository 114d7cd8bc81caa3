"""`python -m k2.consumer.bench`: in-process throughput of the writer's CPU path, no Docker.

Two measurements over feed-generated, Confluent-framed TradeV2 values:

- `decode+convert`: split the header, look up the writer schema, decode, validate, append to
  the batch columns, build the Arrow table: the per-record work of the writer.
- `writer loop`: the same records through IcebergWriter itself (consume loop, batching, the
  commit worker thread), from an in-memory consumer into a sink that builds the Arrow table and
  encodes it to Parquet with zstd (what a commit costs in CPU, minus the network).

Kafka fetching, S3 uploads and the catalog round trip are not in these numbers.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
from confluent_kafka import TopicPartition
from confluent_kafka.schema_registry import Schema

from k2.consumer.batch import Batch, BatchPolicy, SealedBatch
from k2.consumer.deadletter import DeadLetterQueue
from k2.consumer.decoding import RecordDecoder
from k2.consumer.health import HealthLimits, HealthState
from k2.consumer.registry import WriterSchemas
from k2.consumer.sink import CommitOutcome
from k2.consumer.writer import IcebergWriter, KafkaMessage, RebalanceCallback
from k2.feed.generator import generate_frames
from k2.feed.serializer import TradeSerializer
from k2.model.binance import from_binance_frame
from k2.model.names import TOPIC
from k2.model.schema import trade_v2_schema_str

SCHEMA_ID = 1
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")


class _Registry:
    def get_schema(self, schema_id: int) -> Schema:
        return Schema(trade_v2_schema_str(), "AVRO")

    def get_subjects(self) -> list[str]:
        return [f"{TOPIC}-value"]


class _Message:
    __slots__ = ("_offset", "_partition", "_value")

    def __init__(self, partition: int, offset: int, value: bytes) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None


class _Consumer:
    """Hands out pre-built messages; stops the run when they are all consumed and committed."""

    def __init__(self, messages: list[_Message], stop: threading.Event) -> None:
        self._messages = messages
        self._next = 0
        self._stop = stop
        self.committed = 0

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        if on_assign is not None:
            on_assign(self, [TopicPartition(TOPIC, 0)])

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def consume(self, num_messages: int = 1, timeout: float = -1) -> Sequence[KafkaMessage]:
        chunk = self._messages[self._next : self._next + num_messages]
        self._next += len(chunk)
        if not chunk:
            time.sleep(min(timeout, 0.001))
        return chunk

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        self.committed = max(tp.offset for tp in offsets)
        if self.committed >= len(self._messages):
            self._stop.set()
        return offsets

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0)]

    def seek(self, partition: TopicPartition) -> None:
        raise AssertionError("the benchmark never rewinds")

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, 0, self._next)]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return 0, len(self._messages)

    def close(self) -> None:
        pass


class _ParquetSink:
    """Builds the Arrow table and encodes it as zstd Parquet, as a commit would, in memory."""

    def __init__(self) -> None:
        self.rows = 0

    def stored_offsets(self, *, refresh: bool = True) -> dict[int, int]:
        return {}

    def commit(self, batch: SealedBatch) -> CommitOutcome:
        started = time.monotonic()
        table = batch.to_table()
        pq.write_table(table, io.BytesIO(), compression="zstd")
        self.rows += table.num_rows
        return CommitOutcome(
            committed=True,
            rows=table.num_rows,
            skipped_rows=0,
            offsets=dict(batch.next_offsets),
            snapshot_id=None,
            attempts=1,
            seconds=time.monotonic() - started,
        )


class _NoProducer:
    def produce(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the benchmark has no bad input")

    def poll(self, timeout: float = -1) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        return 0


def make_values(count: int, seed: int = 0) -> list[bytes]:
    """`count` framed TradeV2 values of generated Binance trades, with their vendor data."""
    serializer = TradeSerializer(SCHEMA_ID)
    now = datetime.now(UTC)
    frames = generate_frames(
        SYMBOLS, seed=seed, count=count, start=datetime(2026, 1, 1, tzinfo=UTC)
    )
    return [serializer(from_binance_frame(frame, now)) for frame in frames]


Rate = tuple[float, float]
"""(records per wall-clock second, records per CPU second of this process)."""


def _rates(count: int, wall_started: float, cpu_started: float) -> Rate:
    return (
        count / (time.perf_counter() - wall_started),
        count / (time.process_time() - cpu_started),
    )


def bench_decode_convert(values: list[bytes], batch_size: int) -> Rate:
    """Rates through decode, validate, columns and the Arrow table build (one thread)."""
    decoder = RecordDecoder(WriterSchemas(_Registry()))
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(values), batch_size):
        batch = Batch()
        now, wall = time.monotonic(), datetime.now(UTC)
        for offset in range(start, min(start + batch_size, len(values))):
            batch.add_trade(decoder.decode(values[offset], wall), 0, offset, now)
        batch.seal().to_table()
    return _rates(len(values), started, cpu)


def bench_writer_loop(values: list[bytes], batch_size: int) -> Rate:
    """Rates through IcebergWriter with the Parquet-encoding sink (commits on a worker thread)."""
    stop = threading.Event()
    consumer = _Consumer([_Message(0, i, v) for i, v in enumerate(values)], stop)
    health = HealthState(HealthLimits(60.0, 60.0))
    writer = IcebergWriter(
        consumer=consumer,
        decoder=RecordDecoder(WriterSchemas(_Registry())),
        dead_letters=DeadLetterQueue(_NoProducer(), f"{TOPIC}.dlq"),
        sink=_ParquetSink(),
        health=health,
        policy=BatchPolicy(batch_size, 1.0),
        topic=TOPIC,
        executor=ThreadPoolExecutor(1),
    )
    started, cpu = time.perf_counter(), time.process_time()
    writer.run(stop)
    rates = _rates(len(values), started, cpu)
    if consumer.committed != len(values):
        raise RuntimeError(f"only {consumer.committed} of {len(values)} records committed")
    return rates


def main(argv: list[str] | None = None) -> int:
    """Run both measurements `--repeat` times and print the best of each.

    The CPU rate (records per second of this process's CPU time) is the one to compare across
    runs on a shared machine: the wall rate drops whenever other processes take the cores.
    """
    parser = argparse.ArgumentParser(prog="python -m k2.consumer.bench", description=__doc__)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    values = make_values(args.count)
    size = sum(map(len, values)) / len(values)
    print(f"{args.count} records, {size:.0f} bytes each, batches of {args.batch}")
    for name, bench in (
        ("decode+convert", bench_decode_convert),
        ("writer loop", bench_writer_loop),
    ):
        runs = [bench(values, args.batch) for _ in range(args.repeat)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(
            f"{name:>15}: best {max(walls):,.0f} msg/s wall, {max(cpus):,.0f} msg/s per CPU "
            f"second (wall runs: {', '.join(f'{w:,.0f}' for w in walls)})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
