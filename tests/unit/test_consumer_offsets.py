"""The offsets map in snapshot summaries: format, merge, walk-back, and where a restart resumes.

The restart cases follow one batch covering partition 0 offsets 100..149 through each point a
writer can crash at; in every case the table's map decides, so the batch lands exactly once.
"""

from __future__ import annotations

import json

import pytest
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.refs import SnapshotRef, SnapshotRefType
from pyiceberg.table.snapshots import Operation, Snapshot, Summary

from k2.consumer.offsets import (
    OFFSETS_PROPERTY,
    USE_GROUP_OFFSET,
    OffsetsCorruptError,
    decode_offsets,
    encode_offsets,
    landed_partitions,
    merge_offsets,
    start_positions,
    stored_offsets,
)
from k2.iceberg.table import TRADES_PARTITION_SPEC, TRADES_SCHEMA, TRADES_SORT_ORDER
from k2.model.names import CONSUMER_GROUP, TOPIC


def test_encoding_is_the_documented_json() -> None:
    text = encode_offsets(TOPIC, CONSUMER_GROUP, {10: 5, 2: 99, 0: 1234})

    assert json.loads(text) == {
        "topic": TOPIC,
        "group": CONSUMER_GROUP,
        "partitions": {"0": 1234, "2": 99, "10": 5},
    }
    assert list(json.loads(text)["partitions"]) == ["0", "2", "10"]
    assert decode_offsets(text).partitions == {0: 1234, 2: 99, 10: 5}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"topic": "t", "group": "g"}',
        '{"topic": "t", "group": "g", "partitions": {"zero": 1}}',
        '{"topic": "t", "group": "g", "partitions": {"0": -1}}',
        '{"topic": "t", "group": "g", "partitions": {"0": "12"}}',
        '{"topic": 1, "group": "g", "partitions": {}}',
    ],
)
def test_an_unreadable_map_is_an_error_not_a_guess(text: str) -> None:
    with pytest.raises(OffsetsCorruptError, match=OFFSETS_PROPERTY):
        decode_offsets(text)


def test_merge_keeps_partitions_absent_from_the_batch() -> None:
    assert merge_offsets({0: 100, 1: 50}, {1: 60, 2: 5}) == {0: 100, 1: 60, 2: 5}


def test_merge_never_moves_an_offset_back() -> None:
    # A late writer's smaller offset must not make the table forget a newer commit.
    assert merge_offsets({0: 150}, {0: 120}) == {0: 150}


def test_landed_partitions() -> None:
    assert landed_partitions({0: 100, 1: 7}, {0: 100, 1: 9}) == {1}
    assert landed_partitions({0: 100}, {}) == set()


# -- where a restart resumes, per crash point ----------------------------------------------

BEFORE = {0: 100}
AFTER = {0: 150}


def test_crash_before_the_iceberg_commit_reads_the_batch_again() -> None:
    # Table and group both still say 100.
    assert start_positions([0], BEFORE) == {0: 100}


def test_crash_between_iceberg_and_kafka_commit_does_not_read_it_again() -> None:
    # The group still says 100, the table says 150: the table wins.
    assert start_positions([0], AFTER) == {0: 150}


def test_crash_after_both_commits_resumes_after_the_batch() -> None:
    assert start_positions([0], AFTER) == {0: 150}


def test_a_partition_the_table_never_saw_starts_at_the_group_offset() -> None:
    assert start_positions([0, 3], AFTER) == {0: 150, 3: USE_GROUP_OFFSET}


# -- reading the map from a table's snapshots ----------------------------------------------


def _metadata(*snapshots: Snapshot) -> TableMetadata:
    base = new_table_metadata(
        schema=TRADES_SCHEMA,
        partition_spec=TRADES_PARTITION_SPEC,
        sort_order=TRADES_SORT_ORDER,
        location="file:///warehouse/market_data/trades",
        properties={},
    )
    if not snapshots:
        return base
    head = snapshots[-1].snapshot_id
    return base.model_copy(
        update={
            "snapshots": list(snapshots),
            "current_snapshot_id": head,
            "refs": {
                "main": SnapshotRef.model_validate(
                    {"snapshot-id": head, "type": SnapshotRefType.BRANCH}
                )
            },
        }
    )


def _snapshot(snapshot_id: int, parent: int | None, **summary: str) -> Snapshot:
    return Snapshot.model_validate(
        {
            "snapshot-id": snapshot_id,
            "parent-snapshot-id": parent,
            "manifest-list": f"file:///m/{snapshot_id}.avro",
            "summary": Summary(Operation.APPEND, **summary),
        }
    )


def _offsets(topic: str, partitions: dict[int, int]) -> dict[str, str]:
    return {OFFSETS_PROPERTY: encode_offsets(topic, CONSUMER_GROUP, partitions)}


def test_no_snapshot_means_no_offsets() -> None:
    assert stored_offsets(_metadata(), TOPIC) is None


def test_the_current_snapshot_wins() -> None:
    metadata = _metadata(
        _snapshot(1, None, **_offsets(TOPIC, {0: 10})),
        _snapshot(2, 1, **_offsets(TOPIC, {0: 20, 1: 3})),
    )

    found = stored_offsets(metadata, TOPIC)

    assert found is not None
    assert (found.partitions, found.snapshot_id) == ({0: 20, 1: 3}, 2)


def test_walks_back_through_parents_without_the_property() -> None:
    metadata = _metadata(
        _snapshot(1, None, **_offsets(TOPIC, {0: 10})),
        _snapshot(2, 1, **_offsets("market.crypto.trades.kraken", {0: 99})),
        _snapshot(3, 2),  # e.g. a compaction
    )

    found = stored_offsets(metadata, TOPIC)

    assert found is not None
    assert (found.partitions, found.snapshot_id) == ({0: 10}, 1)


def test_a_history_without_this_writer_has_no_offsets() -> None:
    assert stored_offsets(_metadata(_snapshot(1, None), _snapshot(2, 1)), TOPIC) is None


def test_a_corrupt_map_stops_the_walk_with_an_error() -> None:
    metadata = _metadata(
        _snapshot(1, None, **_offsets(TOPIC, {0: 10})),
        _snapshot(2, 1, **{OFFSETS_PROPERTY: "{broken"}),
    )

    with pytest.raises(OffsetsCorruptError):
        stored_offsets(metadata, TOPIC)
