"""Hear the writer's commit notices, so the replica follows each commit at once.

Without them the follower can only load the table through the catalog on a timer: often
enough to be fresh means many loads (catalog CPU), rarely enough to be cheap means stale
answers. With them it loads once per commit, as soon as the commit lands, and on its timer
only as a fallback (see `IcebergTradeRepository.follow`).

The listener reads partition 0 of the commits topic from its end, outside any consumer group
(nothing to commit, nothing to rebalance). It is `live` while Kafka answers: librdkafka
reports a broker it cannot reach through the error callback, and for a while after such an
error the follower goes back to loading on its short timer, since notices may be missed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, Protocol

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from k2.model.commit_notice import NOTICE_PARTITION, CommitNotice

log = logging.getLogger(__name__)

POLL_S: Final = 0.5
"""How long one poll waits; a notice wakes it at once (the broker answers the fetch then)."""
QUIET_AFTER_ERROR_S: Final = 5.0
"""After a Kafka error the listener counts as not live this long: notices may have been lost."""


class NoticeSource(Protocol):
    """The part of confluent_kafka.Consumer used here (tests pass a fake)."""

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read these partitions from the given offsets."""
        ...

    def poll(self, timeout: float = -1) -> Any:
        """One message, an error event, or None."""
        ...

    def close(self) -> None:
        """Leave (no group here, so nothing to hand over)."""
        ...


class CommitListener:
    """Sets an event when a commit notice arrives; `wait` blocks until one does (or times out).

    Args:
        open_source: makes the consumer; it gets `on_error` for librdkafka's error callback.
        topic: the commits topic (see k2.model.names.COMMITS_TOPIC).
    """

    def __init__(
        self,
        open_source: Callable[[Callable[[KafkaError], None]], NoticeSource],
        topic: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_source = open_source
        self.topic = topic
        self._clock = clock
        self._notice = threading.Event()
        self._running = False
        self._error_at = float("-inf")
        self.received = 0
        self.last: CommitNotice | None = None

    @property
    def live(self) -> bool:
        """True while it runs and Kafka has reported no error for QUIET_AFTER_ERROR_S."""
        return self._running and self._clock() - self._error_at >= QUIET_AFTER_ERROR_S

    def wait(self, timeout_s: float) -> bool:
        """Block until a notice arrives (True) or `timeout_s` passes (False); then re-arm."""
        arrived = self._notice.wait(timeout_s)
        self._notice.clear()
        return arrived

    def run(self, stop: threading.Event) -> None:
        """Listen until `stop` is set (blocking: run it in a thread)."""
        source = self._open_source(self._on_error)
        source.assign([TopicPartition(self.topic, NOTICE_PARTITION, OFFSET_END)])
        self._running = True
        log.info("following commit notices on %s", self.topic)
        try:
            while not stop.is_set():
                self._handle(source.poll(POLL_S))
        finally:
            self._running = False
            self._notice.set()  # a follower waiting on notices wakes and sees `stop`
            source.close()

    def _handle(self, message: Any) -> None:
        if message is None:
            return
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                self._on_error(error)
            return
        notice = CommitNotice.decode(message.value())
        if notice is not None:
            self.received += 1
            self.last = notice
            self._notice.set()

    def _on_error(self, error: KafkaError) -> None:
        if self.live:
            log.warning("commit notices may be missed (following on a timer): %s", error)
        self._error_at = self._clock()


def kafka_source(bootstrap: str) -> Callable[[Callable[[KafkaError], None]], NoticeSource]:
    """Opens a librdkafka consumer for the notices, outside any group.

    The broker answers a fetch as soon as a notice is there; while none is, each fetch
    waits the default 500 ms, so an idle listener costs two small requests a second.
    """

    def open_source(on_error: Callable[[KafkaError], None]) -> NoticeSource:
        return Consumer(
            {
                "bootstrap.servers": bootstrap,
                # Required by the client, unused: partitions are assigned, nothing committed.
                "group.id": f"k2-query-api-notices-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "error_cb": on_error,
            }
        )

    return open_source
