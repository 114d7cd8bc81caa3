"""RenewingProducer against fake clients: a stuck client is replaced once new ones see leaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from k2.feed.producer import KafkaProducer
from k2.feed.renewal import RenewingProducer
from tests.unit.clocks import ManualClock


@dataclass
class FakePartition:
    leader: int
    error: Any = None


@dataclass
class FakeTopic:
    partitions: dict[int, FakePartition]
    error: Any = None


@dataclass
class FakeMetadata:
    topics: dict[str, FakeTopic]


@dataclass
class Cluster:
    """What every fake client sees: the partitions' leaders, or no broker at all."""

    leaders: list[int] = field(default_factory=lambda: [1, 1, 1])
    up: bool = True

    def metadata(self, topic: str) -> FakeMetadata:
        if not self.up:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        parts = {i: FakePartition(leader) for i, leader in enumerate(self.leaders)}
        return FakeMetadata({topic: FakeTopic(parts)})


class FakeClient:
    """A confluent_kafka.Producer stand-in: delivers on poll unless stuck; counts probes.

    A blind client never answers a metadata request, as the stuck one in the run that made the
    renewal ask new clients instead.
    """

    def __init__(
        self, clock: ManualClock, cluster: Cluster, *, stuck: bool = False, blind: bool = False
    ) -> None:
        self.clock = clock
        self.cluster = cluster
        self.stuck = stuck
        self.blind = blind
        self.produced: list[bytes | None] = []
        self.pending: list[tuple[Any, bytes | None]] = []
        self.offset = 0
        self.probes = 0
        self.purged = False

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        on_delivery: Any = None,
    ) -> None:
        self.produced.append(value)
        self.pending.append((on_delivery, value))

    def poll(self, timeout: float = -1) -> int:
        if timeout > 0:
            self.clock.now += timeout
        if self.purged:
            ready, self.pending = self.pending, []
            for report, _ in ready:
                report(KafkaError(KafkaError._PURGE_QUEUE), FakeMessage(0, -1))
            return len(ready)
        if self.stuck or not self.cluster.up:
            return 0
        ready, self.pending = self.pending, []
        for report, _ in ready:
            report(None, FakeMessage(0, self.offset))
            self.offset += 1
        return len(ready)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> FakeMetadata:
        self.probes += 1
        self.clock.now += 0.01
        assert topic is not None
        if self.blind:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return self.cluster.metadata(topic)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class Clients:
    """Makes FakeClients: the first `stuck_first` of them stuck (and blind), the rest healthy.

    Every client after the first is a probe; one of them may become the producer's client.
    """

    def __init__(
        self, clock: ManualClock, cluster: Cluster, stuck_first: int, *, blind: bool = True
    ) -> None:
        self.clock, self.cluster, self.stuck_first, self.blind = clock, cluster, stuck_first, blind
        self.made: list[FakeClient] = []

    def __call__(self) -> FakeClient:
        stuck = len(self.made) < self.stuck_first
        client = FakeClient(self.clock, self.cluster, stuck=stuck, blind=stuck and self.blind)
        self.made.append(client)
        return client

    @property
    def probes(self) -> int:
        """Metadata requests made, by any client."""
        return sum(client.probes for client in self.made)

    def current(self) -> FakeClient:
        """The client that last received messages (the producer's, after a renewal)."""
        return [client for client in self.made if client.produced][-1]


def renewing(
    stuck_first: int, cluster: Cluster | None = None, *, blind: bool = True, **kwargs: Any
) -> tuple[RenewingProducer, Clients]:
    clock = ManualClock()
    clients = Clients(clock, cluster or Cluster(), stuck_first, blind=blind)
    return RenewingProducer(clients, clock=clock, **kwargs), clients


def send(producer: RenewingProducer, reports: list[tuple[Any, int]], values: range) -> None:
    def reporter(n: int) -> Callable[[Any, Any], None]:
        return lambda error, _message: reports.append((error, n))

    for n in values:
        producer.produce("t", str(n).encode(), b"k", on_delivery=reporter(n))


def test_is_a_kafka_producer() -> None:
    producer: KafkaProducer = renewing(0)[0]  # mypy checks the protocol here
    assert producer.flush(0) == 0


def test_a_healthy_client_is_never_replaced_nor_probed() -> None:
    producer, clients = renewing(0)
    reports: list[tuple[Any, int]] = []
    for second in range(60):
        send(producer, reports, range(second * 10, second * 10 + 10))
        producer.poll(1.0)
    assert producer.flush(5) == 0
    assert [n for _, n in reports] == list(range(600))
    assert clients.probes == 0
    assert producer.renewals == []


def test_a_stuck_client_is_replaced_and_every_message_reported_once_in_order() -> None:
    producer, clients = renewing(1, stall_s=10.0)
    reports: list[tuple[Any, int]] = []
    send(producer, reports, range(50))
    assert producer.flush(60) == 0
    # Probed at 10 s (leaders seen), again at 15 s (seen for half a stall): that one takes over.
    assert clients.probes == 2
    assert clients.made[0].purged
    # Every message went again through the new client, in produce order, each reported once
    # and without the purged client's error.
    assert clients.current() is clients.made[2]
    assert clients.made[2].produced == [str(n).encode() for n in range(50)]
    assert reports == [(None, n) for n in range(50)]
    assert len(producer.renewals) == 1
    assert producer.renewals[0].resent == 50
    assert 15.0 <= producer.renewals[0].stalled_s < 16.5


def test_no_renewal_until_new_clients_have_seen_every_leader_for_half_a_stall() -> None:
    cluster = Cluster(leaders=[1, -1, 1])
    producer, clients = renewing(1, cluster, stall_s=10.0)
    reports: list[tuple[Any, int]] = []
    send(producer, reports, range(5))
    assert producer.flush(30) == 5
    assert clients.probes >= 4  # asked, every stall_s / 2, and told no
    cluster.leaders = [1, 1, 1]
    cluster.up = False
    assert producer.flush(10) == 5
    cluster.up = True
    probes = clients.probes
    assert producer.flush(4) == 5  # leaders seen once: not yet
    assert clients.probes == probes + 1
    assert producer.renewals == []
    assert producer.flush(10) == 0  # seen again half a stall later: renewed
    assert len(producer.renewals) == 1
    assert [n for _, n in reports] == list(range(5))


def test_a_stall_that_ends_forgets_the_leaders_seen_in_it() -> None:
    producer, clients = renewing(0, stall_s=10.0)
    reports: list[tuple[Any, int]] = []
    send(producer, reports, range(3))
    clients.made[0].stuck = True  # it waits, as a healthy client does while a broker restarts
    assert producer.flush(11) == 3
    assert clients.probes == 1  # leaders seen at 10 s
    clients.made[0].stuck = False
    assert producer.flush(5) == 0  # the old client delivered: no renewal
    send(producer, reports, range(3, 6))
    clients.made[0].stuck = True
    assert producer.flush(11) == 3
    assert clients.probes == 2  # a new stall, seen at its 10 s: not renewed on the old sight
    assert producer.renewals == []


def test_probes_are_spaced_so_an_outage_costs_one_metadata_request_per_half_stall() -> None:
    cluster = Cluster(up=False)
    producer, clients = renewing(0, cluster, stall_s=10.0)
    reports: list[tuple[Any, int]] = []
    send(producer, reports, range(3))
    for _ in range(600):  # a minute of 0.1 s polls
        producer.poll(0.1)
    # Stalled from 10 s on, asked at most every 5 s: 11 probes in the minute, not 500.
    assert clients.probes == pytest.approx(11, abs=1)


def test_renewals_stop_at_the_limit_and_messages_then_stay_unacknowledged() -> None:
    # Every client answers metadata and none delivers: a cause renewal does not cure.
    producer, clients = renewing(100, stall_s=5.0, max_renewals=2, blind=False)
    reports: list[tuple[Any, int]] = []
    send(producer, reports, range(3))
    assert producer.flush(60) == 3
    assert len(producer.renewals) == 2
    assert clients.probes == 4  # two per renewal, then no more
    assert reports == []


def test_a_full_queue_raises_and_keeps_nothing() -> None:
    producer, clients = renewing(0)
    reports: list[tuple[Any, int]] = []

    def full(*args: Any, **kwargs: Any) -> None:
        raise BufferError("Local: Queue full")

    clients.made[0].produce = full  # type: ignore[method-assign]
    with pytest.raises(BufferError):
        send(producer, reports, range(1))
    assert len(producer) == 0
