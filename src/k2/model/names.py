"""The Kafka, registry and Iceberg names the feed, the consumer, the API and the tests share.

One module, so the producer's subject and the consumer's subject cannot drift apart again
(the platform this replaces used two different subject names for one topic).
"""

from __future__ import annotations

from typing import Final


def topic_name(asset_class: str, data_type: str, exchange: str) -> str:
    """`market.{asset_class}.{data_type}.{exchange}`: one kind of data from one venue."""
    return f"market.{asset_class}.{data_type}.{exchange}"


def value_subject(topic: str) -> str:
    """The registry subject of a topic's values under TopicNameStrategy: `{topic}-value`."""
    return f"{topic}-value"


TOPIC: Final = topic_name("crypto", "trades", "binance")
"""Crypto trades from Binance: `market.crypto.trades.binance`."""

SUBJECT: Final = value_subject(TOPIC)
"""`market.crypto.trades.binance-value`, for producer and consumer alike."""

COMMITS_TOPIC: Final = f"{TOPIC}.commits"
"""One notice per Iceberg commit of the trades from TOPIC (see k2.model.commit_notice)."""

CONSUMER_GROUP: Final = "k2-iceberg-writer-crypto-v2"
"""The Iceberg writer's group; it commits offsets only after the Iceberg commit of a batch."""

SCHEMA_NAMESPACE: Final = "com.k2.marketdata"
RECORD_NAME: Final = "TradeV2"
RECORD_FULL_NAME: Final = f"{SCHEMA_NAMESPACE}.{RECORD_NAME}"

EXCHANGE_BINANCE: Final = "BINANCE"
"""The `exchange` value, and the `trade_id` prefix, of trades from Binance."""

ICEBERG_NAMESPACE: Final = "market_data"
ICEBERG_TABLE: Final = f"{ICEBERG_NAMESPACE}.trades"
