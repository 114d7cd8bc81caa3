"""Is Kafka answering? Learned from librdkafka's own statistics, at no extra request.

A poll that returns nothing looks the same whether the topic is idle or the broker froze:
librdkafka keeps a paused broker's connections "UP" until a request times out (a minute), and
reports no error meanwhile. Its statistics do tell: every broker entry counts the responses
received (`rx`). The writer always has partitions assigned and fetches with
`fetch.wait.max.ms` of 50 ms; sampled during the chaos runs, some response arrived between
almost every two documents (longest gap seen 1.4 s), and a consumer with no partitions was
measured hearing something every 2 s. So while any response arrives, Kafka is answering;
once none has for 5 s, health says so and names the brokers. The callback runs once a second
inside `consume`, on the writer's thread, and parses a document of a few kilobytes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from k2.consumer.health import HealthState

log = logging.getLogger(__name__)


class KafkaLiveness:
    """The consumer's `stats_cb`: tells health whenever some broker answered since last time."""

    def __init__(self, health: HealthState) -> None:
        self._health = health
        self._received: dict[str, int] = {}

    def __call__(self, stats_json: str) -> None:
        """Read one statistics document (librdkafka's JSON)."""
        try:
            brokers: Mapping[str, Any] = json.loads(stats_json).get("brokers", {})
            received = {name: int(broker.get("rx", 0)) for name, broker in brokers.items()}
            states = {
                str(broker.get("nodename") or name): str(broker.get("state", "?"))
                for name, broker in brokers.items()
                if int(broker.get("nodeid", -1)) >= 0
            }
        except (ValueError, TypeError, AttributeError) as exc:
            log.debug("unreadable librdkafka statistics: %s", exc)
            return
        # Per broker entry, not a sum: librdkafka drops a broker's entry when its connection
        # goes and makes a new one, counting from 0, when it comes back (measured across a
        # Kafka restart: rx 8 before, 5 after). A count that moved, either way, above 0 means
        # that broker answered since the last document.
        answered = any(
            count > 0 and count != self._received.get(name) for name, count in received.items()
        )
        self._received = received
        self._health.kafka_heard(answered=answered, brokers=states)
