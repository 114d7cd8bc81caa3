"""Health that tells the truth: every readiness condition, the HTTP endpoints."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from k2.consumer.commit_timing import CommitBreakdown
from k2.consumer.health import HealthLimits, HealthServer, HealthState
from k2.consumer.kafka_liveness import KafkaLiveness
from tests.unit.clocks import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def state(clock: ManualClock) -> HealthState:
    return HealthState(HealthLimits(max_poll_age_s=10.0, max_uncommitted_s=30.0), clock=clock)


def _healthy(state: HealthState) -> HealthState:
    state.table_loaded()
    state.assigned([0, 1])
    state.polled()
    return state


def test_a_fresh_writer_is_unhealthy_with_reasons(state: HealthState) -> None:
    reasons = state.reasons()

    assert "Iceberg table not loaded yet" in reasons
    assert "waiting for the first partition assignment" in reasons
    assert "has not polled Kafka yet" in reasons


def test_healthy_when_everything_holds(state: HealthState) -> None:
    assert _healthy(state).reasons() == []
    assert state.document()["healthy"] is True


def test_no_partitions_after_an_assignment_is_unhealthy(state: HealthState) -> None:
    _healthy(state).assigned([])

    assert state.reasons() == ["no partitions assigned"]


def test_a_stale_poll_is_unhealthy(state: HealthState, clock: ManualClock) -> None:
    _healthy(state)
    clock.now += 10.5

    assert state.reasons() == ["last Kafka poll 10.5 s ago (limit 10 s)"]


def test_a_batch_stuck_uncommitted_is_unhealthy(state: HealthState, clock: ManualClock) -> None:
    _healthy(state).uncommitted_since(clock.now)
    clock.now += 29.0
    state.polled()
    assert state.reasons() == []

    clock.now += 2.0
    state.polled()

    assert state.reasons() == ["records consumed 31.0 s ago are still uncommitted (limit 30 s)"]
    state.uncommitted_since(None)
    assert state.reasons() == []


def test_a_failing_registry_is_unhealthy_until_it_answers(
    state: HealthState, clock: ManualClock
) -> None:
    _healthy(state).registry_failed("connection refused")
    clock.now += 3.0
    state.polled()

    assert state.reasons() == ["schema registry failing for 3.0 s: connection refused"]
    state.registry_ok()
    assert state.reasons() == []
    assert state.document()["last_error"] == {"message": "connection refused", "age_s": 3.0}


def _stats(rx: int, state: str = "UP") -> str:
    """A librdkafka statistics document: one bootstrap entry and one real broker."""
    return json.dumps(
        {
            "brokers": {
                "kafka:9092/bootstrap": {"nodeid": -1, "nodename": "kafka:9092", "rx": 1},
                "kafka:9092/1": {"nodeid": 1, "nodename": "kafka:9092", "state": state, "rx": rx},
            }
        }
    )


def test_kafka_silent_too_long_is_unhealthy_and_names_the_broker(
    state: HealthState, clock: ManualClock
) -> None:
    liveness = KafkaLiveness(_healthy(state))
    for rx in (10, 30, 50):  # answering: about 20 responses a second
        liveness(_stats(rx))
        clock.now += 1.0
    state.polled()
    assert state.reasons() == []

    for _ in range(6):  # paused: the connection stays UP, nothing comes back
        liveness(_stats(50))
        clock.now += 1.0
    state.polled()
    assert state.reasons() == [
        "Kafka has not answered for 7.0 s (limit 5 s; brokers: kafka:9092 UP)"
    ]

    liveness(_stats(51))
    assert state.reasons() == []


_ONLY_BOOTSTRAP = json.dumps(
    {"brokers": {"kafka:9092/bootstrap": {"nodeid": -1, "nodename": "kafka:9092", "rx": 0}}}
)
"""What librdkafka reports with every learned broker dropped (as after a Kafka restart)."""


def test_kafka_is_lost_only_while_no_broker_is_known(
    state: HealthState, clock: ManualClock
) -> None:
    liveness = KafkaLiveness(_healthy(state))
    liveness(_stats(10))
    clock.now += 30.0
    liveness(_stats(10))  # paused: silent for 30 s, but the broker is still known
    assert state.kafka_lost_for() is None

    liveness(_ONLY_BOOTSTRAP)
    clock.now += 4.0
    assert state.kafka_lost_for() == 34.0  # counted from the last answer

    liveness(_stats(1))  # learned again and answering
    assert state.kafka_lost_for() is None


def test_kafka_back_after_a_restart_counts_from_zero_and_is_heard(
    state: HealthState, clock: ManualClock
) -> None:
    """A broker entry is made anew after a restart (by librdkafka): its count starts at 0."""
    liveness = KafkaLiveness(_healthy(state))
    liveness(_stats(10_000))  # a long-lived connection
    clock.now += 1.0
    liveness(_stats(0, state="INIT"))  # restarting
    clock.now += 4.0
    liveness(_stats(5))  # back: far below the old count, but it answered
    clock.now += 3.0
    liveness(_stats(9))
    state.polled()

    assert state.reasons() == []


def test_kafka_never_answering_is_unhealthy(state: HealthState, clock: ManualClock) -> None:
    liveness = KafkaLiveness(_healthy(state))
    liveness(_stats(0, state="DOWN"))
    clock.now += 5.5
    liveness(_stats(0, state="DOWN"))
    state.polled()

    assert state.reasons() == [
        "Kafka has not answered for 5.5 s (limit 5 s; brokers: kafka:9092 DOWN)"
    ]


def test_unreadable_statistics_change_nothing(state: HealthState) -> None:
    KafkaLiveness(_healthy(state))("not json")

    assert state.reasons() == []


def test_a_failed_iceberg_commit_is_unhealthy_until_one_succeeds(
    state: HealthState, clock: ManualClock
) -> None:
    _healthy(state).commit_started()
    state.commit_failed("Iceberg commit failed: OSError: S3 unavailable")
    clock.now += 2.0
    state.polled()

    assert state.reasons() == [
        "Iceberg commits failing for 2.0 s: Iceberg commit failed: OSError: S3 unavailable"
    ]
    state.commit_started()
    state.committed(4, 0, 0)
    assert state.reasons() == []


def test_a_hung_iceberg_commit_is_unhealthy(state: HealthState, clock: ManualClock) -> None:
    _healthy(state).commit_started()
    clock.now += 10.0
    state.polled()
    assert state.reasons() == []

    clock.now += 2.5
    state.polled()
    assert state.reasons() == ["an Iceberg commit has been running for 12.5 s (limit 10 s)"]
    assert state.document()["running_commit_age_s"] == 12.5


def test_shutting_down_is_unhealthy(state: HealthState) -> None:
    _healthy(state).stopping()

    assert state.reasons() == ["shutting down"]


def test_document_has_counters_lag_and_ages(state: HealthState, clock: ManualClock) -> None:
    _healthy(state)
    state.count("consumed", 10)
    state.count("dead_lettered", 2)
    state.committed(rows=8, skipped_rows=0, conflicts=1)
    state.set_lag({0: 5, 1: None})
    clock.now += 2.5

    document = state.document()

    assert document["consumed"] == 10
    assert document["written"] == 8
    assert document["dead_lettered"] == 2
    assert document["commits"] == 1
    assert document["commit_conflicts"] == 1
    assert document["lag"] == {"0": 5, "1": None}
    assert document["last_commit_age_s"] == 2.5
    assert document["assigned_partitions"] == [0, 1]
    assert json.loads(json.dumps(document)) == document


@pytest.fixture
def server(state: HealthState) -> Iterator[HealthServer]:
    server = HealthServer(state, "127.0.0.1", 0).start()
    yield server
    server.close()


def _get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_endpoint_answers_503_then_200(state: HealthState, server: HealthServer) -> None:
    status, body = _get(server.port, "/health")
    assert status == 503
    assert json.loads(body)["healthy"] is False

    _healthy(state)
    status, body = _get(server.port, "/health")

    assert status == 200
    assert json.loads(body)["reasons"] == []
    assert _get(server.port, "/elsewhere")[0] == 404


def test_ready_is_one_line_for_the_container_healthcheck(
    state: HealthState, server: HealthServer
) -> None:
    status, body = _get(server.port, "/ready")
    assert status == 503
    assert body.decode().startswith("unhealthy: Iceberg table not loaded yet;")

    _healthy(state)

    assert _get(server.port, "/ready") == (200, b"healthy\n")


def test_commit_timing_is_summarised_per_phase(state: HealthState) -> None:
    for total in (100.0, 200.0, 300.0):
        breakdown = CommitBreakdown({"data_files": total / 2, "catalog": total / 4}, total)
        state.committed(1, 0, 0, waited_s=0.5, breakdown=breakdown)

    timing = state.document()["commit_timing_ms"]

    assert timing["commits"] == 3
    assert timing["total"] == {"p50": 200.0, "p95": 290.0, "max": 300.0}
    assert timing["data_files"]["max"] == 150.0
    assert timing["waited"]["p50"] == 500.0
    assert timing["manifests"] == {"p50": 0.0, "p95": 0.0, "max": 0.0}
