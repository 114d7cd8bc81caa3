"""A feed producer that replaces its librdkafka client when deliveries stall on a live broker.

Why: after a broker restart librdkafka (2.16.0 here; confluentinc/librdkafka#5430, open) can
leave a partition without a leader for good. During the broker's controlled shutdown a produce
response names leader -1, the incremental metadata update skips that partition, and later full
metadata does not bring it back: its messages wait until `message.timeout.ms` and fail although
the broker is up and names a leader. Measured in K2's restart-kafka fault: 3 runs of 12.

The feed is the test's load generator, and a lost trade there fails a test about the pipeline.
So `RenewingProducer` keeps every unacknowledged message. When the oldest has waited `stall_s`,
it asks a new client of the same configuration for its topics' leaders, every `stall_s / 2`.
The stuck client is not asked: its own view is the suspect (in one run of ten it never
named the leaders, or never answered, although the broker had been up for fifty seconds).
Once new clients have named a leader for every partition for `stall_s / 2` (the broker is up
and past its start-up, where even a healthy client still waits for its producer id), the
latest of them replaces the stuck one: the stuck client is purged and the kept messages are
sent again through the new one, in their order. A message the old client had in flight may
then be in Kafka twice; K2's consumer drops repeated message ids, and the ledger still records
each trade once (only the live client's reports count). Every renewal is logged and kept in
`renewals`, and every probe's answer is logged, so a run shows what was seen.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import count
from typing import Any, Final, Protocol

from k2.feed.producer import DeliveryCallback

log = logging.getLogger(__name__)

STALL_S: Final = 10.0
"""A message unacknowledged this long is a stall worth a metadata request. A healthy client
delivers within its reconnect backoff (1 s at most in the feed's configuration) of the broker's
return; the confirmation span of `stall_s / 2` covers its producer-id wait after that, and a
renewal that comes early anyway costs a few repeated messages, not a lost one."""
PROBE_TIMEOUT_S: Final = 2.0
"""A new client's connection and metadata request block the sending thread; while the broker
is down the probe waits all of this, once per `stall_s / 2`."""
MAX_RENEWALS: Final = 3
"""A client that stalls again after this many new ones has a cause renewal does not cure: its
messages then time out and fail the run as they would without renewal."""


class RenewableProducer(Protocol):
    """The part of confluent_kafka.Producer a RenewingProducer drives."""

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

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        """A Metadata response (ClusterMetadata); raises KafkaException on timeout."""
        ...

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        """Drop queued and in-flight messages; their reports say purged."""
        ...


@dataclass(frozen=True, slots=True)
class Renewal:
    """One replacement of the client: when, after how long without an ack, how many re-sent."""

    at: float
    stalled_s: float
    resent: int


@dataclass(frozen=True, slots=True)
class _Waiting:
    topic: str
    value: bytes | None
    key: bytes | None
    on_delivery: DeliveryCallback | None
    since: float
    """When it was produced, or sent again by a new client."""


class RenewingProducer:
    """A KafkaProducer over a replaceable confluent_kafka.Producer (see the module's docstring).

    Args:
        make: Builds a new client (the first one at once).
        stall_s: Seconds a message may wait unacknowledged before its topic's leaders are asked.
        probe_timeout_s: How long that metadata request may take.
        max_renewals: Renewals allowed in this producer's life.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        make: Callable[[], RenewableProducer],
        *,
        stall_s: float = STALL_S,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
        max_renewals: int = MAX_RENEWALS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make = make
        self._client = make()
        self._stall_s = stall_s
        self._probe_timeout_s = probe_timeout_s
        self._max_renewals = max_renewals
        self._clock = clock
        self._ids = count()
        self._generation = 0
        self._waiting: dict[int, _Waiting] = {}  # in produce order: the first is the oldest
        self._next_probe_at = 0.0
        self._leaders_since: float | None = None
        """When new clients began to name every leader in this stall (None: not yet)."""
        self.renewals: list[Renewal] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue one message; BufferError (queue full) passes through, nothing kept then."""
        self._enqueue(next(self._ids), _Waiting(topic, value, key, on_delivery, self._clock()))

    def poll(self, timeout: float = -1) -> int:
        """Serve reports, then renew the client if it has stalled (see the module)."""
        served = self._client.poll(timeout)
        self._check()
        return served

    def flush(self, timeout: float = -1) -> int:
        """Serve reports until none is outstanding or `timeout` passes; how many remain.

        Polls in steps of at most a second so a stall is noticed during the flush too.
        """
        deadline = None if timeout < 0 else self._clock() + timeout
        while self._waiting:
            left = 1.0 if deadline is None else min(1.0, deadline - self._clock())
            if left <= 0:
                break
            self.poll(left)
        return len(self._waiting)

    def __len__(self) -> int:
        """Messages not yet acknowledged (or failed), as confluent_kafka.Producer's len."""
        return len(self._waiting)

    def _enqueue(self, ident: int, waiting: _Waiting) -> None:
        report = partial(self._report, self._generation, ident)
        self._client.produce(waiting.topic, waiting.value, waiting.key, on_delivery=report)
        self._waiting[ident] = waiting

    def _report(self, generation: int, ident: int, error: Any, message: Any) -> None:
        if generation != self._generation:
            return  # a purged client's report: the message was sent again by the new one
        waiting = self._waiting.pop(ident, None)
        if waiting is not None and waiting.on_delivery is not None:
            waiting.on_delivery(error, message)

    def _check(self) -> None:
        if not self._waiting or len(self.renewals) >= self._max_renewals:
            return
        now = self._clock()
        oldest = next(iter(self._waiting.values()))
        if now - oldest.since < self._stall_s:
            self._leaders_since = None
            return
        if now < self._next_probe_at:
            return
        self._next_probe_at = now + self._stall_s / 2
        topics = sorted({waiting.topic for waiting in self._waiting.values()})
        probe = self._make()
        answers = (_missing_leader(probe, topic, self._probe_timeout_s) for topic in topics)
        missing = next(filter(None, answers), None)
        stalled_s = now - oldest.since
        if missing is not None:
            self._leaders_since = None
            log.info("k2-feed: no ack for %.1f s; a new client sees %s", stalled_s, missing)
            return
        if self._leaders_since is None:
            self._leaders_since = now
        seen_s = now - self._leaders_since
        log.info(
            "k2-feed: no ack for %.1f s; new clients have seen every leader of %s for %.1f s",
            stalled_s,
            ", ".join(topics),
            seen_s,
        )
        if seen_s >= self._stall_s / 2:
            self._renew(probe, stalled_s)

    def _renew(self, new: RenewableProducer, stalled_s: float) -> None:
        old, resend = self._client, sorted(self._waiting.items())
        self._generation += 1
        old.purge(in_queue=True, in_flight=True, blocking=False)
        old.poll(0)  # serves the purge reports, which the generation check ignores
        self._client = new
        self._waiting = {}
        self._leaders_since = None
        now = self._clock()
        for ident, waiting in resend:
            again = dataclasses.replace(waiting, since=now)
            while True:
                try:
                    self._enqueue(ident, again)
                    break
                except BufferError:
                    self._client.poll(0.05)
        renewal = Renewal(at=now, stalled_s=round(stalled_s, 2), resent=len(resend))
        self.renewals.append(renewal)
        log.warning(
            "k2-feed: a message unacknowledged for %.1f s while a new client sees a leader for "
            "every partition of %s (librdkafka#5430); replaced the Kafka producer and sent %d "
            "messages again",
            stalled_s,
            ", ".join(sorted({w.topic for _, w in resend})),
            len(resend),
        )


def _missing_leader(client: RenewableProducer, topic: str, timeout_s: float) -> str | None:
    """What `client`'s metadata for `topic` lacks for a renewal; None: it names every leader."""
    try:
        metadata = client.list_topics(topic, timeout=timeout_s)
    except Exception as exc:  # KafkaException: no broker answered; the outage goes on
        return f"no broker answer in {timeout_s:.0f} s ({exc})"
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return f"no partitions of {topic} ({None if found is None else found.error})"
    for number, partition in sorted(found.partitions.items()):
        if partition.error is not None or partition.leader < 0:
            return f"{topic}[{number}] without a leader ({partition.error})"
    return None
