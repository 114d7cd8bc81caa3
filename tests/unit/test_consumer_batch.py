"""Batches: when they close (size, or age since the first record; never empty), what they cover."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from k2.consumer.batch import Batch, BatchPolicy
from k2.feed.generator import generate_frames
from k2.model.binance import from_binance_frame
from k2.model.trade import Trade


@pytest.fixture
def trade() -> Trade:
    frame = next(generate_frames(["BTCUSDT"], seed=1, count=1))
    return from_binance_frame(frame, datetime(2026, 1, 1, tzinfo=UTC))


POLICY = BatchPolicy(max_records=3, max_seconds=1.0)


def test_an_empty_batch_never_closes() -> None:
    batch = Batch()

    assert not batch
    assert not POLICY.should_close(batch, now=1e9)
    assert POLICY.time_left(batch, now=5.0) is None
    assert POLICY.room(batch) == 3


def test_closes_on_size(trade: Trade) -> None:
    batch = Batch()
    batch.add_trade(trade, 0, 10, now=100.0)
    batch.add_dead_letter(0, 11, now=100.1)
    assert not POLICY.should_close(batch, now=100.2)
    assert POLICY.room(batch) == 1

    batch.add_trade(trade, 1, 4, now=100.2)

    assert POLICY.should_close(batch, now=100.2)
    assert POLICY.room(batch) == 0


def test_closes_on_age_of_the_first_record_not_the_last(trade: Trade) -> None:
    batch = Batch()
    batch.add_trade(trade, 0, 0, now=100.0)
    batch.add_trade(trade, 0, 1, now=100.9)  # a later record does not extend the deadline

    assert not POLICY.should_close(batch, now=100.99)
    assert POLICY.time_left(batch, now=100.4) == pytest.approx(0.6)
    assert POLICY.should_close(batch, now=101.0)
    assert POLICY.time_left(batch, now=102.0) == 0.0


def test_offsets_cover_rows_and_dead_letters(trade: Trade) -> None:
    batch = Batch()
    batch.add_trade(trade, 0, 41, now=1.0)
    batch.add_dead_letter(0, 42, now=1.0)
    batch.add_trade(trade, 2, 7, now=1.0)
    batch.add_trade(trade, 0, 43, now=1.0)

    sealed = batch.seal()

    assert sealed.first_offsets == {0: 41, 2: 7}
    assert sealed.next_offsets == {0: 44, 2: 8}
    assert (sealed.size, len(sealed.columns), sealed.dead_letters) == (4, 3, 1)
    assert sealed.to_table()["kafka_offset"].to_pylist() == [41, 7, 43]
