"""The real clients, configured from ConsumerConfig: Kafka consumer and producer, registry, catalog.

Kept apart from the loop so tests drive the loop with fakes and this module stays a list of
settings with the reason for each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from pyiceberg.catalog import Catalog

from k2.consumer.commit_timing import TimedFileIO, TimedRestCatalog
from k2.consumer.config import ConsumerConfig


def consumer_config(
    config: ConsumerConfig,
    on_commit: Callable[[KafkaError | None, list[TopicPartition]], None],
    on_stats: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The writer's consumer settings.

    `on_commit` hears every offset commit, `on_stats` the statistics once a second
    (KafkaLiveness learns from them whether Kafka answers).
    """
    settings: dict[str, Any] = {
        # The writer commits asynchronously (a synchronous commit has no deadline).
        "on_commit": on_commit,
        "bootstrap.servers": config.kafka_bootstrap,
        "group.id": config.group,
        "client.id": config.client_id,
        # Offsets are committed by hand, after the Iceberg commit that holds the batch.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # Eager rebalancing: the revoke callback drops the whole open batch, and the assign
        # callback assigns every partition at the table's offsets; the cooperative protocol
        # would need incremental_assign instead.
        "partition.assignment.strategy": "range",
        # A topic created by someone else after the subscription is found within seconds.
        "topic.metadata.refresh.interval.ms": 10_000,
        # Fetch at most ~20 times a second under a trickle instead of once per message:
        # each fetch costs the broker and this process CPU, and 50 ms is small beside the
        # batch age that closes a commit.
        "fetch.wait.max.ms": 50,
        "fetch.min.bytes": 32_768,
    }
    if config.group_instance_id:
        settings["group.instance.id"] = config.group_instance_id
    if on_stats is not None:
        settings["stats_cb"] = on_stats
        settings["statistics.interval.ms"] = 1_000
    return settings


COMMITS_RETENTION_MS: Final = 3_600_000


def dead_letter_producer_config(config: ConsumerConfig) -> dict[str, Any]:
    """The dead-letter producer's librdkafka settings: acks=all, idempotent, bounded wait."""
    return {
        "bootstrap.servers": config.kafka_bootstrap,
        "client.id": f"{config.client_id}-dlq",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # A dead letter not acknowledged within 30 s fails its batch, which is read again.
        "message.timeout.ms": 30_000,
    }


def registry_config(config: ConsumerConfig) -> dict[str, Any]:
    """SchemaRegistryClient settings: short timeouts, the writer does its own backoff."""
    return {
        "url": config.schema_registry_url,
        "timeout": 5,
        "max.retries": 1,
        "retries.wait.ms": 200,
        "retries.max.wait.ms": 1000,
    }


def catalog_properties(config: ConsumerConfig) -> dict[str, str]:
    """The pyiceberg REST catalog properties, with the S3 (MinIO) settings for data files."""
    properties = {
        "uri": config.iceberg_uri,
        # Files that report their timing, for the per-commit breakdown in the log.
        "py-io-impl": f"{TimedFileIO.__module__}.{TimedFileIO.__qualname__}",
        "s3.endpoint": config.s3_endpoint,
        "s3.access-key-id": config.s3_access_key,
        "s3.secret-access-key": config.s3_secret_key,
        "s3.region": config.s3_region,
        "s3.connect-timeout": "10",
        "s3.request-timeout": "60",
    }
    if config.iceberg_warehouse:
        properties["warehouse"] = config.iceberg_warehouse
    return properties


def open_consumer(
    config: ConsumerConfig,
    on_commit: Callable[[KafkaError | None, list[TopicPartition]], None],
    on_stats: Callable[[str], None] | None = None,
) -> Consumer:
    """The Kafka consumer (not yet subscribed)."""
    return Consumer(consumer_config(config, on_commit, on_stats))


def open_dead_letter_producer(config: ConsumerConfig) -> Producer:
    """The dead-letter producer."""
    return Producer(dead_letter_producer_config(config))


def open_registry(config: ConsumerConfig) -> SchemaRegistryClient:
    """The schema registry client (Confluent API; Apicurio's ccompat base URL works)."""
    return SchemaRegistryClient(registry_config(config))


def open_catalog(config: ConsumerConfig) -> Catalog:
    """The REST catalog; contacts the server (GET /v1/config), so it fails if that is down.

    Its table commits and files report their spans for the per-commit breakdown.
    """
    return TimedRestCatalog(config.iceberg_catalog_name, **catalog_properties(config))


def ensure_topics(config: ConsumerConfig, timeout_s: float = 10.0) -> list[str]:
    """Create the source, dead-letter and commits topics if absent.

    The writer must be assigned partitions (and so turn healthy) before the first trade is
    produced; librdkafka's auto-creation on subscribe only retries at the next metadata
    refresh, which left a fresh stack's writer unassigned for minutes. The source and
    dead-letter topics take the broker's defaults; the commits topic has one partition (its
    readers follow partition 0) and keeps notices for an hour (they matter for seconds). An
    existing topic is fine; any other error raises, naming the topic. Returns the topics'
    names.
    """
    admin = AdminClient({"bootstrap.servers": config.kafka_bootstrap})
    # -1: the broker's num.partitions and default.replication.factor (KIP-464).
    wanted = [
        NewTopic(name, num_partitions=-1, replication_factor=-1)
        for name in (config.topic, config.dlq_topic)
    ]
    wanted.append(
        NewTopic(
            config.commits_topic,
            num_partitions=1,
            replication_factor=-1,
            config={"retention.ms": str(COMMITS_RETENTION_MS)},
        )
    )
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"cannot create topic {name}: {exc.args[0]}") from exc
    return [topic.topic for topic in wanted]
