"""Deterministic message ids, so a replayed trade carries the id it had the first time.

The id is uuid5 of the K2 namespace and `"{symbol}:{trade_id}"`, not of the trade id alone:
Binance numbers trades per symbol, so `BINANCE-1000` exists for BTCUSDT and for ETHUSDT, and
an id of the trade id alone would make a deduplicating consumer drop one of them.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Final

K2_MESSAGE_NAMESPACE: Final = uuid.UUID("c1785686-9c57-5ec0-a5c4-8415d81d2683")
"""Fixed forever: uuid5(NAMESPACE_URL, "urn:k2:com.k2.marketdata.TradeV2:message_id")."""

_NAMESPACE_BYTES: Final = K2_MESSAGE_NAMESPACE.bytes


def message_id_for(symbol: str, trade_id: str) -> str:
    """The message_id of a trade: str(uuid5(K2_MESSAGE_NAMESPACE, f"{symbol}:{trade_id}")).

    Computed with hashlib directly (the same bytes as uuid.uuid5) because the consumer checks
    it on every record and uuid.UUID objects cost several times more.
    """
    name = _NAMESPACE_BYTES + f"{symbol}:{trade_id}".encode()
    digest = bytearray(hashlib.sha1(name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
