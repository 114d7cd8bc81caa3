"""The dead-letter topic: bad input, byte for byte, with headers saying what was wrong and where.

A dead letter carries the original key, value and headers, plus `k2.error` (the reason),
`k2.error.kind`, `k2.source.topic`, `k2.source.partition` and `k2.source.offset`. The writer
flushes the queue before it commits the offsets that cover those records (in Iceberg, then in
Kafka), so a crash can repeat a dead letter but never lose one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from confluent_kafka import KafkaException

DeliveryCallback = Callable[[Any, Any], None]
"""(KafkaError | None, Message): confluent-kafka's on_delivery signature."""

Headers = Sequence[tuple[str, bytes | str | None]]

DEFAULT_FLUSH_TIMEOUT_S: Final = 30.0


class DeadLetterProducer(Protocol):
    """The part of confluent_kafka.Producer used here (tests pass a fake)."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: list[tuple[str, bytes | str | None]] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue one message; BufferError when the local queue is full."""
        ...

    def poll(self, timeout: float = -1) -> int:
        """Serve delivery reports."""
        ...

    def flush(self, timeout: float = -1) -> int:
        """Wait for every report; the number still outstanding."""
        ...


class DeadLetterError(RuntimeError):
    """Dead letters that Kafka did not acknowledge: the batch they belong to must not commit."""


def dead_letter_headers(
    original: Headers | None, kind: str, reason: str, topic: str, partition: int, offset: int
) -> list[tuple[str, bytes | str | None]]:
    """The original headers followed by the k2.* headers naming the error and the source."""
    headers: list[tuple[str, bytes | str | None]] = list(original or ())
    headers += [
        ("k2.error", reason.encode()),
        ("k2.error.kind", kind.encode()),
        ("k2.source.topic", topic.encode()),
        ("k2.source.partition", str(partition).encode()),
        ("k2.source.offset", str(offset).encode()),
    ]
    return headers


class DeadLetterQueue:
    """Produces dead letters to one topic and tells, at flush, whether all were acknowledged."""

    def __init__(
        self,
        producer: DeadLetterProducer,
        topic: str,
        *,
        flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S,
    ) -> None:
        self.topic = topic
        self._producer = producer
        self._flush_timeout_s = flush_timeout_s
        self._queued = 0
        self._failures: list[str] = []

    def send(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        kind: str,
        reason: str,
        source_topic: str,
        partition: int,
        offset: int,
    ) -> None:
        """Queue one dead letter (waiting for room if librdkafka's local queue is full)."""
        all_headers = dead_letter_headers(headers, kind, reason, source_topic, partition, offset)
        self._queued += 1
        while True:
            try:
                self._producer.produce(
                    self.topic, value, key, headers=all_headers, on_delivery=self._on_delivery
                )
                break
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                # Refused at once (e.g. too large): fail the batch at flush, like a lost one.
                self._failures.append(f"{source_topic}/{partition}@{offset}: {exc}")
                return
        self._producer.poll(0)

    def _on_delivery(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))

    def flush(self) -> int:
        """Wait until every queued dead letter is acknowledged; how many were.

        Raises DeadLetterError if any failed or is still outstanding after the timeout; the
        batch is then abandoned and read again (its dead letters are sent again).
        """
        if not self._queued:
            return 0
        outstanding = self._producer.flush(self._flush_timeout_s)
        queued, failures = self._queued, self._failures
        self._queued, self._failures = 0, []
        if outstanding or failures:
            problems = [f"{len(failures)} failed (first: {failures[0]})"] if failures else []
            if outstanding:
                problems.append(f"{outstanding} unacknowledged after {self._flush_timeout_s} s")
            raise DeadLetterError(
                f"dead letters to {self.topic}: {queued} sent, " + ", ".join(problems)
            )
        return queued
