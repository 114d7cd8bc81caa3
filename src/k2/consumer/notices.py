"""Announce each Iceberg commit on the commits topic (see k2.model.commit_notice).

A notice is a hint for readers: sending it never delays or fails a commit. A notice Kafka
refuses or loses is counted and logged (once a minute at most) and otherwise forgotten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import KafkaException

from k2.consumer.deadletter import DeadLetterProducer
from k2.model.commit_notice import CommitNotice

log = logging.getLogger(__name__)

_LOG_EVERY_S: Final = 60.0


class CommitNotices:
    """Sends one notice per commit of `table` to `topic` through `producer` (never blocks)."""

    def __init__(
        self,
        producer: DeadLetterProducer,
        topic: str,
        table: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self._producer = producer
        self._table = table
        self._clock = clock
        self._logged_at = float("-inf")
        self.sent = 0
        self.failed = 0

    def announce(self, snapshot_id: int) -> None:
        """Queue the notice of snapshot `snapshot_id`; delivery is reported in the background."""
        notice = CommitNotice(self._table, snapshot_id)
        try:
            self._producer.produce(
                self.topic,
                notice.encode(),
                self._table.encode(),
                on_delivery=self._delivered,
            )
        except (BufferError, KafkaException) as exc:
            self._failure(f"not queued: {exc}")
            return
        self.sent += 1
        self._producer.poll(0)

    def _delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self._failure(f"not delivered: {error}")

    def _failure(self, what: str) -> None:
        self.failed += 1
        now = self._clock()
        if now - self._logged_at >= _LOG_EVERY_S:
            self._logged_at = now
            log.warning(
                "commit notice %s (%d so far; readers see commits at their next periodic load)",
                what,
                self.failed,
            )
