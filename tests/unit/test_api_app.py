"""k2-query-api over HTTP with an in-memory repository: auth, envelopes, formats, paging, 422s."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from k2.api.memory import InMemoryTradeRepository
from k2.api.models import (
    ErrorResponse,
    StatsResponse,
    SummaryResponse,
    SymbolsResponse,
    TradesResponse,
)
from k2.model.trade import Trade
from tests.unit.api_fixtures import (
    AUTH,
    DAY2,
    KEY,
    T0,
    make_trade,
    sample_app,
    sample_trades,
)


@pytest.fixture
def repository() -> InMemoryTradeRepository:
    return InMemoryTradeRepository.of(sample_trades())


@pytest.fixture
def client(repository: InMemoryTradeRepository) -> Iterator[TestClient]:
    with TestClient(sample_app(repository), raise_server_exceptions=False) as c:
        yield c


def get_trades(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/trades", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    TradesResponse.model_validate(body)
    return body


def expected_order(trades: list[Trade]) -> list[str]:
    ordered = sorted(trades, key=lambda t: (t.timestamp, t.message_id), reverse=True)
    return [t.message_id for t in ordered]


# -- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/v1/trades", "/v1/symbols", "/v1/stats", "/v1/summary/BTCUSDT/2026-01-01"]
)
def test_v1_without_key_is_401_and_with_wrong_key_403(client: TestClient, path: str) -> None:
    missing = client.get(path)
    assert missing.status_code == 401
    assert ErrorResponse.model_validate(missing.json()).error.code == "missing_api_key"
    wrong = client.get(path, headers={"X-API-Key": KEY + "x"})
    assert wrong.status_code == 403
    assert ErrorResponse.model_validate(wrong.json()).error.code == "invalid_api_key"
    assert client.get(path, headers=AUTH).status_code == 200


def test_empty_key_counts_as_missing(client: TestClient) -> None:
    assert client.get("/v1/trades", headers={"X-API-Key": ""}).status_code == 401


@pytest.mark.parametrize("path", ["/health", "/docs", "/openapi.json"])
def test_open_paths_need_no_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_repository_is_not_asked_before_auth(
    client: TestClient, repository: InMemoryTradeRepository
) -> None:
    client.get("/v1/trades", headers={"X-API-Key": "nope"})
    assert repository.calls == 0


# -- envelope and formats -----------------------------------------------------------------


def test_trades_envelope_has_exactly_the_contract_keys(client: TestClient) -> None:
    body = get_trades(client, limit=2)
    assert list(body) == ["success", "meta", "data", "pagination"]
    assert body["success"] is True
    assert set(body["meta"]) == {"correlation_id", "timestamp"}
    assert set(body["pagination"]) == {"limit", "offset", "total", "has_more"}
    uuid.UUID(body["meta"]["correlation_id"])
    assert body["meta"]["timestamp"].endswith("Z")


def test_trade_carries_every_tradev2_field_formatted(client: TestClient) -> None:
    body = get_trades(client, symbol="BTCUSDT", end_time="2026-01-01T12:00:09Z", limit=1)
    trade = make_trade(9)
    assert body["data"] == [
        {
            "message_id": trade.message_id,
            "trade_id": "BINANCE-9",
            "symbol": "BTCUSDT",
            "exchange": "BINANCE",
            "asset_class": "crypto",
            "timestamp": "2026-01-01T12:00:09.000000Z",
            "price": "43251.12345678",
            "quantity": "0.00100000",
            "currency": "USDT",
            "side": "BUY",
            "trade_conditions": [],
            "source_sequence": 9,
            "ingestion_timestamp": "2026-01-01T12:00:09.005000Z",
            "platform_sequence": None,
            "vendor_data": {"t": "9", "m": "false"},
        }
    ]


def test_decimals_are_strings_with_eight_places_never_floats(client: TestClient) -> None:
    body = get_trades(client, limit=10_000)
    for trade in body["data"]:
        for name in ("price", "quantity"):
            assert isinstance(trade[name], str)
            whole, fraction = trade[name].split(".")
            assert len(fraction) == 8
            assert whole.isdigit()
    tiny = next(t for t in body["data"] if t["trade_id"] == "BINANCE-300")
    assert tiny["price"] == "0.00000001"  # Arrow's own cast would say "1E-8"


def test_timestamps_round_trip_to_the_stored_instant(client: TestClient) -> None:
    body = get_trades(client, limit=10_000)
    by_id = {t.message_id: t for t in sample_trades()}
    for trade in body["data"]:
        assert datetime.fromisoformat(trade["timestamp"]) == by_id[trade["message_id"]].timestamp
        assert Decimal(trade["price"]) == by_id[trade["message_id"]].price


def test_trades_answer_with_server_timing(client: TestClient) -> None:
    response = client.get("/v1/trades", headers=AUTH)
    phases = dict(part.split(";dur=") for part in response.headers["Server-Timing"].split(", "))
    # The in-memory repository reports no phases of its own; the route adds its two.
    assert set(phases) == {"serialize", "total"}
    assert 0 <= float(phases["serialize"]) <= float(phases["total"])


def test_trades_name_the_snapshot_they_were_read_from(client: TestClient) -> None:
    response = client.get("/v1/trades", headers=AUTH)
    assert response.headers["X-K2-Snapshot-Id"] == "1"  # the in-memory repository's


def test_correlation_id_is_taken_from_the_request_and_echoed(client: TestClient) -> None:
    response = client.get("/v1/trades", headers={**AUTH, "X-Correlation-ID": "abc-123"})
    assert response.headers["X-Correlation-ID"] == "abc-123"
    assert response.json()["meta"]["correlation_id"] == "abc-123"


def test_correlation_id_is_made_up_when_absent_or_unsafe(client: TestClient) -> None:
    fresh = client.get("/v1/trades", headers=AUTH)
    assert fresh.headers["X-Correlation-ID"] == fresh.json()["meta"]["correlation_id"]
    uuid.UUID(fresh.headers["X-Correlation-ID"])
    unsafe = client.get("/v1/trades", headers={**AUTH, "X-Correlation-ID": "a b;<script>"})
    uuid.UUID(unsafe.headers["X-Correlation-ID"])


def test_errors_carry_the_correlation_id_too(client: TestClient) -> None:
    response = client.get("/v1/trades", headers={"X-Correlation-ID": "err-1"})
    assert response.status_code == 401
    assert response.headers["X-Correlation-ID"] == "err-1"
    assert response.json()["meta"]["correlation_id"] == "err-1"


# -- ordering and paging ------------------------------------------------------------------


def test_newest_first_with_message_id_tiebreak(client: TestClient) -> None:
    body = get_trades(client, limit=10_000)
    assert [t["message_id"] for t in body["data"]] == expected_order(sample_trades())
    assert body["pagination"] == {"limit": 10_000, "offset": 0, "total": 17, "has_more": False}


def test_limit_and_offset_slice_the_same_order(client: TestClient) -> None:
    order = expected_order(sample_trades())
    pages = []
    for offset in range(0, 17, 4):
        body = get_trades(client, limit=4, offset=offset)
        pages += [t["message_id"] for t in body["data"]]
        assert body["pagination"]["total"] == 17
        assert body["pagination"]["has_more"] is (offset + 4 < 17)
    assert pages == order


def test_offset_past_the_end_is_an_empty_page(client: TestClient) -> None:
    body = get_trades(client, offset=500)
    assert body["data"] == []
    assert body["pagination"] == {"limit": 100, "offset": 500, "total": 17, "has_more": False}


def test_default_limit_is_100() -> None:
    repo = InMemoryTradeRepository.of(make_trade(n) for n in range(150))
    with TestClient(sample_app(repo)) as client:
        body = get_trades(client)
    assert len(body["data"]) == 100
    assert body["pagination"] == {"limit": 100, "offset": 0, "total": 150, "has_more": True}


def test_filters_combine(client: TestClient) -> None:
    eth = get_trades(client, symbol="ethusdt")
    assert {t["symbol"] for t in eth["data"]} == {"ETHUSDT"}
    assert eth["pagination"]["total"] == 3
    window = get_trades(
        client,
        symbol="BTCUSDT",
        exchange="binance",
        start_time="2026-01-01T12:00:02Z",
        end_time="2026-01-01T13:00:05+01:00",  # 12:00:05 UTC
    )
    inside = [
        t
        for t in sample_trades()
        if t.symbol == "BTCUSDT"
        and T0 + timedelta(seconds=2) <= t.timestamp <= DAY2
        and t.timestamp <= T0 + timedelta(seconds=5)
    ]
    assert [t["message_id"] for t in window["data"]] == expected_order(inside)
    assert window["pagination"]["total"] == len(inside) == 7


def test_time_bounds_are_inclusive(client: TestClient) -> None:
    body = get_trades(
        client, symbol="BTCUSDT", start_time="2026-01-01T12:00:02Z", end_time="2026-01-01T12:00:04Z"
    )
    assert sorted(t["trade_id"] for t in body["data"]) == ["BINANCE-2", "BINANCE-3", "BINANCE-4"]
    same = get_trades(client, start_time="2026-01-01T12:00:05Z", end_time="2026-01-01T12:00:05Z")
    assert same["pagination"]["total"] == 4  # BINANCE-5 and the three at the same microsecond


def test_unknown_symbol_is_an_empty_page_not_an_error(client: TestClient) -> None:
    body = get_trades(client, symbol="DOGEUSDT")
    assert body["data"] == []
    assert body["pagination"]["total"] == 0


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 10_001}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"offset": -1}, "query.offset"),
        ({"start_time": "2026-01-01T00:00:00"}, "query.start_time"),
        ({"end_time": "yesterday"}, "query.end_time"),
        ({"start_time": "1767225600"}, "query.start_time"),
        ({"start_time": "2026-01-02T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"}, None),
        ({"symbol": "BTC-USDT"}, "query.symbol"),
        ({"symbol": ""}, "query.symbol"),
        ({"exchange": "x" * 40}, "query.exchange"),
    ],
)
def test_bad_trade_parameters_are_422_with_a_clear_message(
    client: TestClient, params: dict[str, Any], location: str | None
) -> None:
    response = client.get("/v1/trades", params=params, headers=AUTH)
    assert response.status_code == 422, response.text
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == "validation_error"
    assert error.details
    if location is not None:
        assert error.details[0].location == location
        assert error.message.startswith(location)
    else:
        assert "after end_time" in error.message


def test_naive_time_error_says_what_to_add(client: TestClient) -> None:
    response = client.get("/v1/trades", params={"start_time": "2026-01-01T00:00"}, headers=AUTH)
    assert "no timezone" in response.json()["error"]["message"]


@pytest.mark.parametrize("day", ["2026-1-1", "20260101", "2026-W01-1", "2026-02-30", "today"])
def test_bad_summary_date_is_422(client: TestClient, day: str) -> None:
    response = client.get(f"/v1/summary/BTCUSDT/{day}", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["location"] == "path.date"


def test_unknown_route_and_method_use_the_error_envelope(client: TestClient) -> None:
    missing = client.get("/v1/nope", headers=AUTH)
    assert missing.status_code == 404
    ErrorResponse.model_validate(missing.json())
    wrong_method = client.post("/v1/trades", headers=AUTH)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


# -- symbols, summary, stats --------------------------------------------------------------


def test_symbols_are_distinct_and_sorted(client: TestClient) -> None:
    body = client.get("/v1/symbols", headers=AUTH).json()
    SymbolsResponse.model_validate(body)
    assert body["data"] == ["BTCUSDT", "ETHUSDT"]


def test_summary_computes_ohlcv_by_time() -> None:
    trades = [
        make_trade(1, price="100.00000000", quantity="1"),
        make_trade(2, price="105.5", quantity="2"),
        make_trade(3, price="99.25", quantity="0.5"),
        make_trade(4, price="101", quantity="1.5"),
        make_trade(5, symbol="ETHUSDT", price="1", quantity="1"),  # other symbol
        make_trade(6, timestamp=DAY2, price="999", quantity="9"),  # next day
    ]
    repo = InMemoryTradeRepository.of(trades)
    with TestClient(sample_app(repo)) as client:
        response = client.get("/v1/summary/btcusdt/2026-01-01", headers=AUTH)
    assert response.status_code == 200
    body = SummaryResponse.model_validate(response.json())
    # vwap = (100 + 211 + 49.625 + 151.5) / 5 = 102.425
    assert body.data.model_dump(mode="json") == {
        "symbol": "BTCUSDT",
        "date": "2026-01-01",
        "open": "100.00000000",
        "high": "105.50000000",
        "low": "99.25000000",
        "close": "101.00000000",
        "volume": "5.00000000",
        "vwap": "102.42500000",
        "trade_count": 4,
        "first_trade_timestamp": "2026-01-01T12:00:01.000000Z",
        "last_trade_timestamp": "2026-01-01T12:00:04.000000Z",
    }


def test_summary_vwap_rounds_half_even_to_eight_places() -> None:
    trades = [
        make_trade(1, price="1", quantity="1"),
        make_trade(2, price="2", quantity="1"),
        make_trade(3, price="2", quantity="1"),
    ]
    repo = InMemoryTradeRepository.of(trades)
    with TestClient(sample_app(repo)) as client:
        body = client.get("/v1/summary/BTCUSDT/2026-01-01", headers=AUTH).json()
    assert body["data"]["vwap"] == "1.66666667"


def test_summary_without_trades_is_404(client: TestClient) -> None:
    response = client.get("/v1/summary/BTCUSDT/2025-12-31", headers=AUTH)
    assert response.status_code == 404
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == "not_found"
    assert "BTCUSDT" in error.message
    assert "2025-12-31" in error.message


def test_summary_day_is_the_utc_day(client: TestClient) -> None:
    body = client.get("/v1/summary/BTCUSDT/2026-01-02", headers=AUTH).json()
    assert body["data"]["trade_count"] == 1
    assert body["data"]["open"] == "0.00000001"


def test_stats(client: TestClient, repository: InMemoryTradeRepository) -> None:
    body = client.get("/v1/stats", headers=AUTH).json()
    data = StatsResponse.model_validate(body).data
    assert data.table == "market_data.trades"
    assert data.row_count == 17
    assert data.symbol_count == 2
    assert data.latest_trade_timestamp == "2026-01-02T01:00:00.000000Z"
    assert data.snapshot_id == repository.snapshot_id


def test_empty_table_answers_empty_not_error() -> None:
    with TestClient(sample_app(InMemoryTradeRepository())) as client:
        assert get_trades(client)["pagination"]["total"] == 0
        assert client.get("/v1/symbols", headers=AUTH).json()["data"] == []
        stats = client.get("/v1/stats", headers=AUTH).json()["data"]
        assert stats["row_count"] == 0
        assert stats["latest_trade_timestamp"] is None


# -- failures -----------------------------------------------------------------------------


def test_unavailable_store_is_503_envelope(
    client: TestClient, repository: InMemoryTradeRepository
) -> None:
    repository.fail_with = "catalog unreachable: ConnectionError"
    response = client.get("/v1/trades", headers=AUTH)
    assert response.status_code == 503
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == "unavailable"
    assert "catalog unreachable" in error.message


def test_unexpected_error_is_500_envelope_with_correlation_id(
    client: TestClient, repository: InMemoryTradeRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(repository, "symbols", broken)
    response = client.get("/v1/symbols", headers={**AUTH, "X-Correlation-ID": "c-500"})
    assert response.status_code == 500
    assert response.headers["X-Correlation-ID"] == "c-500"
    body = ErrorResponse.model_validate(response.json())
    assert body.error.code == "internal_error"
    assert "bug" not in body.error.message


# -- OpenAPI ------------------------------------------------------------------------------


def test_openapi_documents_models_security_and_parameters(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("TradesResponse", "TradeOut", "Pagination", "Meta", "ErrorResponse"):
        assert name in schemas
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The key the service was started with (K2_API_KEY).",
    }
    trades = spec["paths"]["/v1/trades"]["get"]
    params = {p["name"]: p for p in trades["parameters"]}
    assert set(params) == {"symbol", "exchange", "start_time", "end_time", "limit", "offset"}
    assert params["limit"]["schema"]["maximum"] == 10_000
    assert "timezone" in params["start_time"]["description"]
    assert {"401", "403", "422", "503"} <= set(trades["responses"])
    assert "security" not in spec["paths"]["/health"]["get"]
    assert schemas["TradeOut"]["properties"]["price"]["pattern"] == r"^-?\d+\.\d{8}$"
