"""Kafka offsets stored in Iceberg snapshot summaries: the writer's record of what it has written.

Each commit to `market_data.trades` carries, in its snapshot summary under `k2.kafka.offsets`,
the NEXT offset to read for every partition the writer has ever written, as JSON:

    {"topic": "market.crypto.trades.binance", "group": "k2-iceberg-writer-crypto-v2",
     "partitions": {"0": 1234, "1": 99}}

The map is cumulative (merged with the previous snapshot's), so the current snapshot alone
says where to resume. The table, not the Kafka group, is the truth: the Kafka commit follows
the Iceberg commit and can only lag it, so a crash between the two neither loses nor duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from confluent_kafka import OFFSET_STORED
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

OFFSETS_PROPERTY: Final = "k2.kafka.offsets"
"""The snapshot summary property holding the offsets map."""

USE_GROUP_OFFSET: Final = OFFSET_STORED
"""Start position for a partition the table knows nothing of: the group's committed offset,
else `auto.offset.reset` (earliest). Safe because the group's offset never leads the table."""


class OffsetsCorruptError(ValueError):
    """A snapshot carries an offsets property this writer cannot read; resuming would guess."""


@dataclass(frozen=True, slots=True)
class StoredOffsets:
    """The offsets one snapshot summary records for one topic."""

    topic: str
    group: str
    partitions: dict[int, int]
    snapshot_id: int | None = None


def encode_offsets(topic: str, group: str, partitions: Mapping[int, int]) -> str:
    """The property value for `partitions` (partition -> next offset), partitions in order."""
    body = {str(p): partitions[p] for p in sorted(partitions)}
    return json.dumps({"topic": topic, "group": group, "partitions": body}, separators=(",", ":"))


def decode_offsets(text: str) -> StoredOffsets:
    """The offsets in a property value, or OffsetsCorruptError saying what is wrong with it."""
    try:
        document = json.loads(text)
        topic = document["topic"]
        group = document["group"]
        raw = document["partitions"]
        if not (isinstance(topic, str) and isinstance(group, str) and isinstance(raw, dict)):
            raise TypeError("topic, group must be strings and partitions an object")
        partitions = {int(p): o for p, o in raw.items()}
        if any(type(o) is not int or o < 0 or p < 0 for p, o in partitions.items()):
            raise ValueError("partitions and offsets must be non-negative integers")
    except (ValueError, TypeError, KeyError) as exc:
        raise OffsetsCorruptError(
            f"{OFFSETS_PROPERTY}={text[:200]!r} is not an offsets map: {type(exc).__name__}: {exc}"
        ) from None
    return StoredOffsets(topic=topic, group=group, partitions=partitions)


def merge_offsets(stored: Mapping[int, int], consumed: Mapping[int, int]) -> dict[int, int]:
    """The cumulative map after a batch: per partition the larger of stored and consumed.

    Partitions absent from the batch keep their stored offsets; an offset never moves back, so
    a late writer cannot make the table forget what a newer one wrote.
    """
    merged = dict(stored)
    for partition, next_offset in consumed.items():
        if next_offset > merged.get(partition, -1):
            merged[partition] = next_offset
    return merged


def snapshot_offsets(snapshot: Snapshot, topic: str) -> StoredOffsets | None:
    """The offsets `snapshot` records for `topic`, or None if it records none."""
    if snapshot.summary is None:
        return None
    text = snapshot.summary[OFFSETS_PROPERTY]
    if text is None:
        return None
    stored = decode_offsets(text)
    if stored.topic != topic:
        return None
    return StoredOffsets(stored.topic, stored.group, stored.partitions, snapshot.snapshot_id)


def stored_offsets(metadata: TableMetadata, topic: str) -> StoredOffsets | None:
    """The offsets of the newest snapshot on the main branch that records any for `topic`.

    Walks back through parents, because a snapshot made by something else (compaction, a
    manual fix) carries no offsets; None when no snapshot of this writer is left. The group is
    not matched: rows in the table are there whichever group wrote them.
    """
    snapshot = metadata.current_snapshot()
    seen: set[int] = set()
    while snapshot is not None and snapshot.snapshot_id not in seen:
        seen.add(snapshot.snapshot_id)
        found = snapshot_offsets(snapshot, topic)
        if found is not None:
            return found
        parent = snapshot.parent_snapshot_id
        snapshot = metadata.snapshot_by_id(parent) if parent is not None else None
    return None


def start_positions(assigned: Iterable[int], stored: Mapping[int, int]) -> dict[int, int]:
    """Where to start reading each assigned partition: the table's next offset if it has one.

    After a crash before the Iceberg commit the table still holds the old offsets (the batch is
    read again); after the Iceberg commit, whether or not the Kafka commit followed, it holds the
    new ones (the batch is not read again). Partitions the table has never seen start from the
    group's committed offset, which cannot be ahead of the table.
    """
    return {p: stored.get(p, USE_GROUP_OFFSET) for p in assigned}


def landed_partitions(first_offsets: Mapping[int, int], stored: Mapping[int, int]) -> set[int]:
    """Partitions whose batch rows start below the table's next offset: some already landed.

    Empty in the normal case; otherwise the rows below the stored offset must be dropped
    before committing (another writer, or an earlier attempt of this one, wrote them).
    """
    return {p for p, first in first_offsets.items() if first < stored.get(p, 0)}
