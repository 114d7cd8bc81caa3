"""Bad Kafka values on purpose, for dead-letter tests: each fails the consumer differently.

- `garbage_value`: not Confluent-framed at all (the magic byte is wrong).
- `unknown_schema_id_value`: framed, with a valid body, but an id the registry never issued.
- `truncated_value`: the right id, with the Avro body cut short.
- `implausible_trade`: a perfectly encodable TradeV2 that `validate` rejects (price -1).

Send the bytes with FeedProducer.send_raw and the trade with FeedProducer.send_trades.
"""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal
from typing import Final

from k2.feed.serializer import TradeSerializer
from k2.model.codec import encode_trade
from k2.model.trade import Trade
from k2.model.wire import HEADER_SIZE, wire_header

UNKNOWN_SCHEMA_ID: Final = 0x7FFF_FFF0
"""An id no registry in a test stack hands out (they count up from 1 or a small base)."""


def garbage_value(seed: int = 0, size: int = 64) -> bytes:
    """`size` seeded random bytes whose first byte is never the magic byte 0."""
    if size < 1:
        raise ValueError(f"size={size}: garbage needs at least one byte")
    rng = random.Random(seed)
    return bytes([rng.randint(1, 255)]) + rng.randbytes(size - 1)


def unknown_schema_id_value(trade: Trade, schema_id: int = UNKNOWN_SCHEMA_ID) -> bytes:
    """A valid TradeV2 body behind a header naming `schema_id`, which the registry lacks."""
    return wire_header(schema_id) + encode_trade(trade)


def truncated_value(serializer: TradeSerializer, trade: Trade, keep: int = 12) -> bytes:
    """`trade` framed with the real schema id, then cut to its first `keep` body bytes."""
    framed = serializer(trade)
    return framed[: HEADER_SIZE + keep]


def implausible_trade(trade: Trade, price: Decimal = Decimal(-1)) -> Trade:
    """`trade` with a non-positive price: decodes fine, fails `validate`.

    It keeps the trade's ids, so pass a trade the run does not also send as a good one.
    """
    if price > 0:
        raise ValueError(f"price={price} is plausible; pass zero or a negative price")
    return dataclasses.replace(trade, price=price)
