"""Real trades through feed -> Kafka -> consumer-crypto -> Iceberg -> k2-query-api, exactly.

Each test uses symbols of its own, so tests never see each other's trades and the expected
counts come from the feed's ledger, not from constants. Every wait on the pipeline checks the
stack about once a second, and when it gives up the failure names the first hop that lost
trades, with examples (see `expect_arrival`).

The tests marked `operational` touch no container: they also run against an already running
K2 (`--e2e-target`), where their own symbols keep their data apart from everyone else's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest
from confluent_kafka import Consumer

from e2e_stack.faults import Faults
from k2.consumer.offsets import stored_offsets
from k2.feed import open_feed
from k2.feed.badinput import garbage_value, unknown_schema_id_value
from k2.feed.generator import generate_frames
from k2.model import TOPIC
from k2.model.names import ICEBERG_TABLE
from tests.e2e.utils.data_validator import (
    Canonical,
    PipelineMismatch,
    assert_hops,
    canonical,
    compare,
    from_trade,
)
from tests.e2e.utils.hops import (
    Endpoints,
    api_records,
    api_served,
    expect_arrival,
    iceberg_records,
    kafka_records,
    unique_symbols,
)
from tests.e2e.utils.polling import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
ARRIVAL_DEADLINE_S = 90.0
KILL_STREAM_COUNT = 6000
"""Trades fed while the consumer is killed: four seconds at 1,500 msg/s spans the kill."""


@pytest.fixture
def arrive(
    endpoints: Endpoints, api: httpx.Client, stack_guard: Callable[[], None]
) -> Callable[[list[Canonical], list[str]], None]:
    """Wait until the API serves every produced trade of `symbols`; fail naming the lost hop."""

    def wait(produced: list[Canonical], symbols: list[str]) -> None:
        expect_arrival(
            lambda: poll_until(
                lambda: api_served(api, symbols),
                lambda n: n >= len(produced),
                ARRIVAL_DEADLINE_S,
                f"{len(produced)} trades of {symbols} through the API",
                guard=stack_guard,
            ),
            endpoints,
            api,
            produced,
            symbols,
        )

    return wait


@pytest.mark.operational
def test_fed_trades_arrive_exactly_at_every_hop(
    endpoints: Endpoints, api: httpx.Client, arrive: Callable[[list[Canonical], list[str]], None]
) -> None:
    symbols = unique_symbols(4)
    feed = open_feed(endpoints.bootstrap, endpoints.registry_url)
    feed.send_frames(generate_frames(symbols, seed=11), count=2000)
    produced = [from_trade(trade) for trade in feed.ledger.trades()]
    arrive(produced, symbols)
    kafka, undecodable = kafka_records(endpoints, symbols)
    assert undecodable == 0
    assert_hops(
        compare("kafka", produced, kafka),
        compare("iceberg", produced, iceberg_records(endpoints, symbols)),
        compare("api", produced, api_records(api, symbols)),
    )


def _header_text(value: str | bytes | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


def _dead_letters(endpoints: Endpoints, keys: list[str], expected: int) -> list[dict[str, str]]:
    """Headers (and key) of the dead letters keyed by `keys`, read from the topic's start."""
    consumer = Consumer(
        {
            "bootstrap.servers": endpoints.bootstrap,
            "group.id": f"k2-e2e-dlq-{unique_symbols(1)[0]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([f"{TOPIC}.dlq"])
    found: list[dict[str, str]] = []

    def read() -> int:
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            key = _header_text(msg.key())
            if msg.error() is None and key in keys:
                raw = msg.headers() or []
                pairs = raw.items() if isinstance(raw, dict) else raw
                headers = {name: _header_text(value) for name, value in pairs}
                found.append({**headers, "key": key})
        return len(found)

    try:
        poll_until(
            read,
            lambda n: n >= expected,
            ARRIVAL_DEADLINE_S,
            f"{expected} dead letters keyed {keys}",
            interval_s=0,
        )
    finally:
        consumer.close()
    return found


@pytest.mark.operational
def test_a_replayed_stretch_is_stored_once(
    endpoints: Endpoints, api: httpx.Client, arrive: Callable[[list[Canonical], list[str]], None]
) -> None:
    """The same trades fed again (new offsets, same message_ids) add nothing (issue 11)."""
    symbols = unique_symbols(2)
    feed = open_feed(endpoints.bootstrap, endpoints.registry_url)
    feed.send_frames(generate_frames(symbols, seed=13), count=600)
    produced = [from_trade(trade) for trade in feed.ledger.trades()]
    arrive(produced, symbols)

    replay = open_feed(endpoints.bootstrap, endpoints.registry_url)
    replay.send_frames(generate_frames(symbols, seed=13), count=600)
    ends: dict[int, int] = {}
    for entry in replay.ledger:
        ends[entry.partition] = max(ends.get(entry.partition, 0), entry.offset + 1)
    originals = {trade.message_id for trade in feed.ledger.trades()}
    assert {trade.message_id for trade in replay.ledger.trades()} == originals
    poll_until(
        lambda: _table_offsets(endpoints),
        lambda stored: all(stored.get(p, 0) >= end for p, end in ends.items()),
        ARRIVAL_DEADLINE_S,
        f"the consumer's commits past the replayed offsets {ends}",
    )

    assert_hops(
        compare("iceberg", produced, iceberg_records(endpoints, symbols)),
        compare("api", produced, api_records(api, symbols)),
    )


def _table_offsets(endpoints: Endpoints) -> dict[int, int]:
    """The next offset per partition the table's head records (the consumer's progress)."""
    table = endpoints.catalog().load_table(ICEBERG_TABLE)
    found = stored_offsets(table.metadata, TOPIC)
    return dict(found.partitions) if found is not None else {}


@pytest.mark.operational
def test_bad_input_is_dead_lettered_and_valid_trades_still_arrive(
    endpoints: Endpoints, api: httpx.Client, arrive: Callable[[list[Canonical], list[str]], None]
) -> None:
    symbols = unique_symbols(2)
    feed = open_feed(endpoints.bootstrap, endpoints.registry_url)
    frames = generate_frames(symbols, seed=23)
    feed.send_frames(frames, count=300)
    garbage = feed.send_raw(garbage_value(seed=5), key=symbols[0].encode())
    unknown = feed.send_raw(
        unknown_schema_id_value(feed.ledger.trades()[0]), key=symbols[1].encode()
    )
    feed.send_frames(frames, count=300)
    produced = [from_trade(trade) for trade in feed.ledger.trades()]
    arrive(produced, symbols)
    assert_hops(compare("api", produced, api_records(api, symbols)))
    ours = _dead_letters(endpoints, symbols, expected=2)
    sources = {(h.get("k2.source.partition"), h.get("k2.source.offset")): h for h in ours}
    for delivery in (garbage, unknown):
        header = sources.get((str(delivery.partition), str(delivery.offset)))
        assert header is not None, f"no dead letter for {delivery}; ours: {ours}"
        assert header.get("k2.error"), header


@pytest.mark.chaos
def test_consumer_killed_mid_stream_loses_and_duplicates_nothing(
    endpoints: Endpoints,
    api: httpx.Client,
    stack_faults: Faults,
    arrive: Callable[[list[Canonical], list[str]], None],
) -> None:
    symbols = unique_symbols(3)
    feed = open_feed(endpoints.bootstrap, endpoints.registry_url)
    sending = threading.Thread(
        target=feed.send_frames,
        args=(generate_frames(symbols, seed=31),),
        kwargs={"count": KILL_STREAM_COUNT, "rate": 1500},
        daemon=True,
    )
    sending.start()
    poll_until(
        lambda: api_served(api, symbols),
        lambda n: n > 0,
        ARRIVAL_DEADLINE_S,
        "the first trades before the kill",
    )
    with stack_faults.killed("consumer-crypto"):
        pass  # killed mid-stream; leaving starts it again and waits until it is ready
    sending.join(timeout=120)
    assert not sending.is_alive(), "the feed did not finish within 120 s"
    produced = [from_trade(trade) for trade in feed.ledger.trades()]
    assert len(produced) == KILL_STREAM_COUNT
    arrive(produced, symbols)
    assert_hops(
        compare("iceberg", produced, iceberg_records(endpoints, symbols)),
        compare("api", produced, api_records(api, symbols)),
    )


@pytest.mark.operational
async def test_api_refuses_missing_and_wrong_keys_and_bad_parameters(
    api_client: httpx.AsyncClient,
) -> None:
    assert (await api_client.get("/health", headers={"X-API-Key": ""})).status_code == 200
    no_key = httpx.AsyncClient(base_url=str(api_client.base_url))
    async with no_key:
        assert (await no_key.get("/v1/symbols")).status_code == 401
        wrong = await no_key.get("/v1/symbols", headers={"X-API-Key": "not-the-key"})
        assert wrong.status_code == 403
    for params in (
        {"limit": 0},
        {"limit": 10001},
        {"start_time": "yesterday"},
        {"start_time": "2026-01-02T00:00:00Z", "end_time": "2026-01-01T00:00:00Z"},
    ):
        response = await api_client.get("/v1/trades", params=params)
        assert response.status_code == 422, (params, response.text)


@pytest.mark.chaos
def test_stopped_consumer_fails_the_wait_naming_the_hop_then_recovers_exactly(
    endpoints: Endpoints,
    api: httpx.Client,
    stack_faults: Faults,
    arrive: Callable[[list[Canonical], list[str]], None],
) -> None:
    """The harness's own promise: a broken hop is named at once, with missing-trade examples."""
    symbols = unique_symbols(2)
    with stack_faults.stopped("consumer-crypto"):
        feed = open_feed(endpoints.bootstrap, endpoints.registry_url)
        feed.send_frames(generate_frames(symbols, seed=41), count=200)
        produced = [from_trade(trade) for trade in feed.ledger.trades()]
        with pytest.raises(PipelineMismatch) as failure:
            arrive(produced, symbols)
    text = str(failure.value)
    # The stack check stopped the wait, not the deadline; the hop after Kafka is named.
    assert text.startswith("service 'consumer-crypto' is not ready: exited"), text[:400]
    assert "first broken hop: iceberg" in text, text[:1000]
    assert f"missing {len(produced)}, e.g." in text, text[:1000]
    hop_lines = [line for line in text.splitlines() if not line.startswith("  |")]
    assert not any(line.startswith("kafka:") for line in hop_lines), "Kafka held every trade"
    # Started again, the consumer picks up where the table says and loses nothing.
    arrive(produced, symbols)
    assert_hops(compare("iceberg", produced, iceberg_records(endpoints, symbols)))


def _newest_first(records: list[Canonical]) -> list[Canonical]:
    return sorted(records, key=lambda r: (r["timestamp"], r["message_id"]), reverse=True)


@pytest.mark.operational
def test_time_range_and_limit_return_exactly_the_expected_slice_newest_first(
    endpoints: Endpoints, api: httpx.Client, arrive: Callable[[list[Canonical], list[str]], None]
) -> None:
    symbol = unique_symbols(1)[0]
    feed = open_feed(endpoints.bootstrap, endpoints.registry_url)
    feed.send_frames(generate_frames([symbol], seed=53), count=600)
    produced = [from_trade(trade) for trade in feed.ledger.trades()]
    arrive(produced, [symbol])
    times = sorted({r["timestamp"] for r in produced})
    start, end = times[len(times) // 5], times[3 * len(times) // 5]
    window = _newest_first([r for r in produced if start <= r["timestamp"] <= end])
    limit = len(window) // 3

    def page(offset: int) -> tuple[list[Canonical], int]:
        response = api.get(
            "/v1/trades",
            params={
                "symbol": symbol.lower(),  # symbols are case-insensitive
                "start_time": _iso(start),
                "end_time": _iso(end),
                "limit": limit,
                "offset": offset,
            },
        )
        response.raise_for_status()
        body = response.json()
        return [canonical(t) for t in body["data"]], body["pagination"]["total"]

    for offset in (0, limit, 2 * limit):
        served, total = page(offset)
        assert total == len(window)
        assert served == window[offset : offset + limit], f"page at offset {offset} differs"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")
