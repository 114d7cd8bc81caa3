"""`python -m k2.consumer`: start the Iceberg writer, run it until SIGTERM, exit with a status.

Exit status 0 after a graceful stop (SIGTERM or SIGINT), 1 when the writer failed (the log says
why; the protocol makes a restart safe), 2 for bad configuration, with one error line on stderr,
3 when an Iceberg commit made no progress for K2_COMMIT_DEADLINE_S (the process leaves at
once, without waiting for the commit's stuck thread), 4 when no Kafka broker was known or
answering for K2_KAFKA_LOST_S; compose restarts it on failure.
The health endpoint starts first, so a writer still waiting for its catalog reports that
instead of looking dead.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TypeVar

from k2.consumer.batch import BatchPolicy
from k2.consumer.clients import (
    ensure_topics,
    open_catalog,
    open_consumer,
    open_dead_letter_producer,
    open_registry,
)
from k2.consumer.config import ConfigError, ConsumerConfig, load_config
from k2.consumer.deadletter import DeadLetterQueue
from k2.consumer.decoding import RecordDecoder
from k2.consumer.health import HealthLimits, HealthServer, HealthState
from k2.consumer.kafka_liveness import KafkaLiveness
from k2.consumer.notices import CommitNotices
from k2.consumer.registry import WriterSchemas
from k2.consumer.sink import IcebergSink
from k2.consumer.writer import (
    CommitHungError,
    GroupCommitReport,
    IcebergWriter,
    KafkaLostError,
)
from k2.iceberg.table import ensure_table

log = logging.getLogger("k2.consumer")

_MAX_START_BACKOFF_S = 10.0
EXIT_COMMIT_HUNG = 3
EXIT_KAFKA_LOST = 4
T = TypeVar("T")


def _retrying(
    action: Callable[[], T], what: str, health: HealthState, stop: threading.Event
) -> T | None:
    """`action()` once it succeeds, retried with backoff while `what` starts; None if stopped."""
    delay = 0.5
    while not stop.is_set():
        try:
            return action()
        except Exception as exc:  # the service may still be starting: wait, report, retry
            message = f"{what}: {type(exc).__name__}: {exc}"
            health.error(message)
            log.warning("%s; retrying in %.1f s", message, delay)
            stop.wait(delay)
            delay = min(_MAX_START_BACKOFF_S, delay * 2)
    return None


def _install_signals(stop: threading.Event) -> None:
    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def run(config: ConsumerConfig, stop: threading.Event) -> int:
    """Run the writer with real clients until `stop`; the exit status."""
    health = HealthState(
        HealthLimits(config.health_max_poll_age_s, config.health_max_uncommitted_s)
    )
    try:
        server = HealthServer(health, config.health_host, config.health_port).start()
    except OSError as exc:
        log.error("cannot serve health on %s:%d: %s", config.health_host, config.health_port, exc)
        return 1
    try:
        table = _retrying(
            lambda: ensure_table(open_catalog(config)),
            f"Iceberg catalog {config.iceberg_uri}",
            health,
            stop,
        )
        if table is None:
            return 0
        sink = IcebergSink(table, topic=config.topic, group=config.group)
        health.table_loaded()
        topics = _retrying(
            lambda: ensure_topics(config), f"Kafka {config.kafka_bootstrap}", health, stop
        )
        if topics is None:
            return 0
        producer = open_dead_letter_producer(config)  # dead letters and commit notices
        writer = IcebergWriter(
            consumer=open_consumer(
                config, on_commit=GroupCommitReport(health), on_stats=KafkaLiveness(health)
            ),
            decoder=RecordDecoder(WriterSchemas(open_registry(config))),
            dead_letters=DeadLetterQueue(producer, config.dlq_topic),
            sink=sink,
            health=health,
            policy=BatchPolicy(config.batch_max_records, config.batch_max_seconds),
            topic=config.topic,
            commit_deadline_s=config.commit_deadline_s,
            kafka_lost_s=config.kafka_lost_s,
            notices=CommitNotices(producer, config.commits_topic, ".".join(table.name())),
        )
        log.info("writing %s to %s", config.topic, table.name())
        writer.run(stop)
        producer.flush(10)
    except CommitHungError as exc:
        log.error("consumer-crypto gives up: %s", exc)
        return EXIT_COMMIT_HUNG
    except KafkaLostError as exc:
        log.error("consumer-crypto gives up: %s", exc)
        return EXIT_KAFKA_LOST
    except Exception:
        log.exception("consumer-crypto failed")
        return 1
    finally:
        server.close()
    log.info("stopped")
    return 0


def main(env: Mapping[str, str] | None = None) -> int:
    """Read the config, run, return the exit status."""
    stop = threading.Event()
    _install_signals(stop)
    try:
        config = load_config(os.environ if env is None else env)
    except ConfigError as exc:
        print(f"k2-consumer: config error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    log.info("starting with %r", config)
    status = run(config, stop)
    if status in (EXIT_COMMIT_HUNG, EXIT_KAFKA_LOST):
        # A hung commit's thread, or a Kafka client whose close or destruction waits for a
        # broker nobody answers for, would keep the interpreter from exiting: leave without.
        logging.shutdown()
        os._exit(status)
    return status
