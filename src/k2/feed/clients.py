"""The real clients: a feed producer wired to a Kafka bootstrap and a schema registry URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from k2.feed.producer import FeedProducer, producer_config
from k2.feed.renewal import RenewingProducer
from k2.feed.serializer import TradeSerializer
from k2.model.names import TOPIC, value_subject


def open_feed(
    bootstrap: str,
    registry_url: str,
    *,
    topic: str = TOPIC,
    producer_overrides: Mapping[str, Any] | None = None,
) -> FeedProducer:
    """A FeedProducer for `topic`, its schema registered under `{topic}-value` first.

    Registering up front makes a wrong registry URL fail here, before any message is sent.
    The Kafka client is a RenewingProducer: one that librdkafka leaves stuck after a broker
    restart is replaced, and its unacknowledged messages sent again.
    """
    registry = SchemaRegistryClient({"url": registry_url})
    serializer = TradeSerializer.register(registry, value_subject(topic))
    config = producer_config(bootstrap, producer_overrides)
    producer = RenewingProducer(lambda: Producer(config))
    return FeedProducer(producer, serializer, topic=topic)
