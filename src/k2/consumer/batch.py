"""One batch of consumed records and when it closes: on size, or on age since its first record.

Freshness is bounded by the age rule, not by "the first empty poll": under a steady trickle a
batch still closes on time, and an idle topic opens no batch, so it commits nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from k2.consumer.columns import TradeColumns
from k2.model.trade import Trade


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Close a batch at `max_records` records (rows and dead letters) or `max_seconds` old."""

    max_records: int
    max_seconds: float

    def should_close(self, batch: Batch, now: float) -> bool:
        """Whether `batch` is due at monotonic time `now`; an empty batch never is."""
        if batch.opened_at is None:
            return False
        return batch.size >= self.max_records or now - batch.opened_at >= self.max_seconds

    def time_left(self, batch: Batch, now: float) -> float | None:
        """Seconds until `batch` closes on age (0 if overdue), None while it is empty."""
        if batch.opened_at is None:
            return None
        return max(0.0, batch.opened_at + self.max_seconds - now)

    def room(self, batch: Batch) -> int:
        """How many more records `batch` takes before it closes on size."""
        return max(0, self.max_records - batch.size)


class Batch:
    """Rows to write, dead letters sent, and the offsets they cover, per partition.

    `first_offsets` is where a rewind goes if the batch is abandoned; `next_offsets` (last
    offset + 1) is what the Iceberg snapshot and then the Kafka commit record.
    """

    __slots__ = ("columns", "dead_letters", "first_offsets", "next_offsets", "opened_at", "size")

    def __init__(self) -> None:
        self.columns = TradeColumns()
        self.first_offsets: dict[int, int] = {}
        self.next_offsets: dict[int, int] = {}
        self.opened_at: float | None = None
        self.size = 0
        self.dead_letters = 0

    def __bool__(self) -> bool:
        return self.size > 0

    def _track(self, partition: int, offset: int, now: float) -> None:
        if self.opened_at is None:
            self.opened_at = now
        if partition not in self.first_offsets:
            self.first_offsets[partition] = offset
        self.next_offsets[partition] = offset + 1
        self.size += 1

    def add_trade(self, trade: Trade, partition: int, offset: int, now: float) -> None:
        """A record to write, consumed at monotonic time `now`."""
        self._track(partition, offset, now)
        self.columns.append(trade, partition, offset)

    def add_dead_letter(self, partition: int, offset: int, now: float) -> None:
        """A record sent to the dead-letter topic: its offset is covered, it has no row."""
        self._track(partition, offset, now)
        self.dead_letters += 1

    def seal(self, now: float | None = None) -> SealedBatch:
        """The immutable part the committer needs (the Arrow table is built there).

        `now` (monotonic) is when its commit starts: the batch then records how long its
        first record waited for that, which the commit log reports.
        """
        return SealedBatch(
            columns=self.columns,
            first_offsets=dict(self.first_offsets),
            next_offsets=dict(self.next_offsets),
            size=self.size,
            dead_letters=self.dead_letters,
            waited_s=(
                max(0.0, now - self.opened_at)
                if now is not None and self.opened_at is not None
                else 0.0
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedBatch:
    """A closed batch on its way to Iceberg."""

    columns: TradeColumns
    first_offsets: dict[int, int]
    next_offsets: dict[int, int]
    size: int
    dead_letters: int
    waited_s: float = 0.0
    """From the batch's first record to the start of its commit."""

    def to_table(self) -> pa.Table:
        """The batch's rows as one Arrow table."""
        return self.columns.to_table()
