"""The deterministic stand-in for the live Binance feed.

Generate or replay Binance trade frames, produce them as TradeV2 to Kafka at a chosen rate, and
keep a ledger of every acknowledgement for the tests to compare Kafka, Iceberg and the API with.
"""

from k2.feed.clients import open_feed
from k2.feed.generator import generate_frames
from k2.feed.ledger import Ledger, LedgerEntry
from k2.feed.pacing import Pacer
from k2.feed.producer import (
    DeliveryError,
    DeliveryFailure,
    FeedProducer,
    RawDelivery,
    RunSummary,
    producer_config,
)
from k2.feed.replay import ReplayError, read_frames, write_frames
from k2.feed.serializer import TradeSerializer

__all__ = [
    "DeliveryError",
    "DeliveryFailure",
    "FeedProducer",
    "Ledger",
    "LedgerEntry",
    "Pacer",
    "RawDelivery",
    "ReplayError",
    "RunSummary",
    "TradeSerializer",
    "generate_frames",
    "open_feed",
    "producer_config",
    "read_frames",
    "write_frames",
]
