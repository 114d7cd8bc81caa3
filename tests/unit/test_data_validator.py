"""The data validator: one canonical form per hop, and mismatches told with examples."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from k2.model import Trade
from tests.e2e.utils.data_validator import (
    PipelineMismatch,
    assert_hops,
    canonical,
    compare,
    from_trade,
)
from tests.unit.trades import make_trade

WHEN = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _trade(n: int, price: str = "43000.12345678") -> Trade:
    return make_trade(
        n,
        price=price,
        quantity="0.00000001",
        timestamp=WHEN,
        ingestion_timestamp=WHEN,
        vendor_data={"m": "false"},
    )


def test_every_hop_spelling_of_a_trade_is_the_same_canonical_record() -> None:
    trade = _trade(1)
    produced = from_trade(trade)
    api_json = {
        **trade.to_avro_dict(),
        "price": "43000.12345678",
        "quantity": "0.00000001",
        "timestamp": "2026-01-02T03:04:05.123456Z",
        "ingestion_timestamp": "2026-01-02T03:04:05.123456Z",
        "kafka_offset": 7,
    }
    arrow_row = {
        **trade.to_avro_dict(),
        "timestamp": WHEN,
        "ingestion_timestamp": WHEN,
        "vendor_data": [("m", "false")],
        "trade_conditions": [],
    }
    assert canonical(api_json) == produced
    assert canonical(arrow_row) == produced
    assert produced["price"] == Decimal("43000.12345678")
    assert produced["timestamp"] == WHEN


def test_mismatches_are_reported_by_kind_with_examples() -> None:
    produced = [from_trade(_trade(n)) for n in range(5)]
    found = [
        produced[0],
        produced[1],
        produced[1],
        from_trade(_trade(3, price="43000.1234567")),
        from_trade(_trade(99)),
    ]
    report = compare("iceberg", produced, found)
    assert not report.ok
    assert report.missing == sorted([produced[2]["message_id"], produced[4]["message_id"]])
    assert report.duplicated == {produced[1]["message_id"]: 2}
    assert report.unexpected == [from_trade(_trade(99))["message_id"]]
    [(message_id, diffs)] = report.differing
    assert message_id == produced[3]["message_id"]
    assert diffs == {"price": (Decimal("43000.12345678"), Decimal("43000.1234567"))}
    text = report.describe()
    assert "expected 5 trades, found 5" in text
    for word in ("missing 2", "duplicated 1", "not produced by this test 1", "differs"):
        assert word in text


def test_assert_hops_names_the_first_broken_hop() -> None:
    produced = [from_trade(_trade(n)) for n in range(3)]
    kafka = compare("kafka", produced, produced)
    iceberg = compare("iceberg", produced, produced[:1])
    api = compare("api", produced, [])
    assert kafka.ok
    assert_hops(kafka)
    with pytest.raises(PipelineMismatch, match="first broken hop: iceberg") as failure:
        assert_hops(kafka, iceberg, api)
    assert "api: expected 3 trades, found 0" in str(failure.value)
