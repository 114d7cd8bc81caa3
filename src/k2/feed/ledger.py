"""What the feed produced and Kafka acknowledged, for tests to hold Kafka, Iceberg and the API to.

One entry per acknowledged trade: the trade itself, where Kafka put it (partition, offset) and
when the acknowledgement arrived, on the monotonic clock (for durations inside one process) and
the wall clock (for freshness against timestamps other processes write).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from k2.model.trade import Trade


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One produced trade and its delivery report."""

    trade: Trade
    partition: int
    offset: int
    sent_monotonic: float
    """When produce() was called."""
    ack_monotonic: float
    """When the delivery report arrived (time.monotonic, this process only)."""
    ack_wall: datetime
    """When the delivery report arrived (aware UTC)."""

    @property
    def message_id(self) -> str:
        """The trade's message_id."""
        return self.trade.message_id

    @property
    def trade_id(self) -> str:
        """The trade's trade_id."""
        return self.trade.trade_id

    @property
    def symbol(self) -> str:
        """The trade's symbol (also its Kafka key)."""
        return self.trade.symbol

    def to_json_dict(self) -> dict[str, Any]:
        """The entry as one JSONL object; the ids come first, for people grepping the file."""
        return {
            "message_id": self.message_id,
            "trade_id": self.trade_id,
            "symbol": self.symbol,
            "partition": self.partition,
            "offset": self.offset,
            "sent_monotonic": self.sent_monotonic,
            "ack_monotonic": self.ack_monotonic,
            "ack_wall": self.ack_wall.isoformat(),
            "trade": self.trade.to_json_dict(),
        }

    @classmethod
    def from_json_dict(cls, entry: dict[str, Any]) -> LedgerEntry:
        """The inverse of `to_json_dict`."""
        return cls(
            trade=Trade.from_json_dict(entry["trade"]),
            partition=entry["partition"],
            offset=entry["offset"],
            sent_monotonic=entry["sent_monotonic"],
            ack_monotonic=entry["ack_monotonic"],
            ack_wall=datetime.fromisoformat(entry["ack_wall"]),
        )


class Ledger:
    """The acknowledged trades of a run, in acknowledgement order."""

    def __init__(self, entries: list[LedgerEntry] | None = None) -> None:
        self.entries: list[LedgerEntry] = entries if entries is not None else []

    def append(self, entry: LedgerEntry) -> None:
        """Record one acknowledged trade."""
        self.entries.append(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[LedgerEntry]:
        return iter(self.entries)

    def by_message_id(self) -> dict[str, LedgerEntry]:
        """Entries keyed by message_id, for matching rows read back from Iceberg or the API."""
        return {entry.message_id: entry for entry in self.entries}

    def trades(self) -> list[Trade]:
        """The acknowledged trades, in acknowledgement order."""
        return [entry.trade for entry in self.entries]

    def dump_jsonl(self, path: Path | str) -> None:
        """Write one JSON object per entry."""
        with Path(path).open("w", encoding="utf-8") as out:
            for entry in self.entries:
                out.write(json.dumps(entry.to_json_dict(), separators=(",", ":")))
                out.write("\n")

    @classmethod
    def load_jsonl(cls, path: Path | str) -> Ledger:
        """A ledger written by `dump_jsonl` (by this process or by `python -m k2.feed`)."""
        with Path(path).open(encoding="utf-8") as lines:
            return cls(
                [LedgerEntry.from_json_dict(json.loads(line)) for line in lines if line.strip()]
            )
