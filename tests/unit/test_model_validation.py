"""validate(): the reasons a decodable trade is dead-lettered, all of them, by field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from k2.model.trade import Trade
from k2.model.validation import MAX_CLOCK_SKEW, validate

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def good() -> Trade:
    return Trade.new(
        trade_id="BINANCE-1",
        symbol="ETHBTC",
        exchange="BINANCE",
        asset_class="crypto",
        timestamp=NOW - timedelta(seconds=1),
        price="0.05123400",
        quantity="1.20000000",
        currency="BTC",
        side="SELL",
        ingestion_timestamp=NOW,
        source_sequence=1,
    )


def changed(**fields: object) -> Trade:
    return dataclasses.replace(good(), **fields)  # type: ignore[arg-type]


def test_a_good_trade_has_no_problems() -> None:
    assert validate(good(), now=NOW) == []


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"price": Decimal(0)}, "price=0.00000000 is not positive"),
        ({"price": Decimal("-1")}, "price=-1.00000000 is not positive"),
        ({"quantity": Decimal(0)}, "quantity=0.00000000 is not positive"),
        ({"currency": "USDT"}, "currency='USDT' does not match the suffix of symbol='ETHBTC'"),
        ({"currency": ""}, "currency='' is empty"),
        ({"exchange": ""}, "exchange='' is empty"),
        ({"trade_id": ""}, "trade_id='' is empty"),
        ({"trade_id": "KRAKEN-1"}, "does not start with exchange='BINANCE'"),
        ({"message_id": "not-derived"}, "message_id='not-derived' is not the deterministic id"),
        ({"source_sequence": -1}, "source_sequence=-1 is negative"),
        ({"platform_sequence": -5}, "platform_sequence=-5 is negative"),
        ({"symbol": "ethbtc"}, "symbol='ethbtc' is not upper-case"),
        (
            {"timestamp": NOW + MAX_CLOCK_SKEW + timedelta(seconds=1)},
            "timestamp=2026-01-01T12:05:01+00:00 is more than 0:05:00 in the future",
        ),
        (
            {"ingestion_timestamp": NOW + timedelta(days=1)},
            "ingestion_timestamp=2026-01-02T12:00:00+00:00 is more than",
        ),
        (
            {"timestamp": datetime(1970, 1, 21, tzinfo=UTC)},
            "timestamp=1970-01-21T00:00:00+00:00 is before 2009-01-03",
        ),
    ],
)
def test_each_problem_names_field_and_value(fields: dict[str, object], problem: str) -> None:
    problems = validate(changed(**fields), now=NOW)
    assert any(problem in p for p in problems), problems


def test_empty_symbol_is_reported() -> None:
    problems = validate(changed(symbol=""), now=NOW)
    assert "symbol='' is empty" in problems


def test_all_problems_are_reported_together() -> None:
    problems = validate(changed(price=Decimal(0), quantity=Decimal(-2), currency="EUR"), now=NOW)
    assert len(problems) == 3


def test_timestamps_within_the_skew_are_fine() -> None:
    assert validate(changed(timestamp=NOW + MAX_CLOCK_SKEW), now=NOW) == []


def test_now_defaults_to_the_wall_clock() -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    assert any("in the future" in p for p in validate(changed(timestamp=future)))
