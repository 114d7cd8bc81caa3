"""Read what each hop of the running pipeline holds for a test's symbols.

Kafka (decoded through the registry), the Iceberg table (scanned through the catalog) and the
API (paged through /v1/trades): each returns canonical records for the data validator. Waits
are polls with a deadline that fail with what was last seen.
"""

from __future__ import annotations

import json
import random
import string
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import parse_schema

from e2e_stack import Deployment, StackUnhealthy
from k2.model import TOPIC, decode_body, split_wire
from k2.model.names import ICEBERG_TABLE
from tests.e2e.utils.data_validator import (
    Canonical,
    HopReport,
    PipelineMismatch,
    canonical,
    compare,
    mismatch_text,
    unreadable,
)

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

API_PAGE = 10_000


def unique_symbols(count: int, quote: str = "USDT") -> list[str]:
    """Symbols no other test uses, so each test's data is its own."""
    rng = random.Random(uuid.uuid4().int)
    return sorted({"".join(rng.choices(string.ascii_uppercase, k=6)) + quote for _ in range(count)})


@dataclass(frozen=True)
class Endpoints:
    """Host-side addresses of the stack's services, from the compose project."""

    bootstrap: str
    registry_url: str
    iceberg_uri: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str
    api_url: str
    consumer_health_url: str

    @classmethod
    def of(cls, deployment: Deployment) -> Endpoints:
        """Published addresses (one engine call for a stack of ours); credentials from env."""
        where = deployment.addresses()

        def at(service: str, port: int) -> str:
            address = where.get((service, port))
            if address is None:
                raise LookupError(
                    f"{service} port {port} is not published by this deployment (for "
                    f'--e2e-target: add `[services.{service}] ports = {{ {port} = "host:port" }}`)'
                )
            return address

        s3 = deployment.service_env("minio")
        return cls(
            bootstrap=at("kafka", 9094),
            registry_url=f"http://{at('schema-registry', 8080)}/apis/ccompat/v7",
            iceberg_uri=f"http://{at('iceberg-rest', 8181)}",
            s3_endpoint=f"http://{at('minio', 9000)}",
            s3_access_key=s3["MINIO_ROOT_USER"],
            s3_secret_key=s3["MINIO_ROOT_PASSWORD"],
            s3_region=deployment.service_env("iceberg-rest")["AWS_REGION"],
            api_url=f"http://{at('k2-query-api', 8000)}" if ("k2-query-api", 8000) in where else "",
            consumer_health_url=f"http://{at('consumer-crypto', 8081)}/health"
            if ("consumer-crypto", 8081) in where
            else "",
        )

    def catalog(self) -> Catalog:
        """PyIceberg's REST catalog, reading files from MinIO through its published port.

        Imported here: PyIceberg takes about 0.2 s to import, which runs that never read
        Iceberg (most stack tests, every `--e2e-reuse` iteration on them) need not pay.
        """
        from pyiceberg.catalog import load_catalog

        return load_catalog(
            "k2-e2e",
            type="rest",
            uri=self.iceberg_uri,
            **{
                "s3.endpoint": self.s3_endpoint,
                "s3.access-key-id": self.s3_access_key,
                "s3.secret-access-key": self.s3_secret_key,
                "s3.region": self.s3_region,
            },
        )


def kafka_records(
    endpoints: Endpoints, symbols: Iterable[str], topic: str = TOPIC
) -> tuple[list[Canonical], int]:
    """Every record keyed by one of `symbols`, decoded; and how many did not decode."""
    wanted = {symbol.encode() for symbol in symbols}
    consumer = Consumer(
        {
            "bootstrap.servers": endpoints.bootstrap,
            "group.id": f"k2-e2e-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    registry = SchemaRegistryClient({"url": endpoints.registry_url})
    schemas: dict[int, Any] = {}
    records: list[Canonical] = []
    undecodable = 0
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=5000, timeout=1.0):
                if msg.error():
                    continue
                partition, offset = msg.partition() or 0, msg.offset() or 0
                if offset >= ends[partition] - 1:
                    pending.discard(partition)
                if msg.key() not in wanted:
                    continue
                try:
                    schema_id, body = split_wire(msg.value() or b"")
                    if schema_id not in schemas:
                        text = registry.get_schema(schema_id).schema_str or ""
                        schemas[schema_id] = parse_schema(json.loads(text))
                    records.append(canonical(decode_body(body, schemas[schema_id])))
                except Exception:
                    undecodable += 1
        if pending:
            raise AssertionError(
                f"could not read {topic} partitions {sorted(pending)} to their end within 60 s"
            )
    finally:
        consumer.close()
    return records, undecodable


def iceberg_records(endpoints: Endpoints, symbols: Iterable[str]) -> list[Canonical]:
    """The table's rows for `symbols`, through the catalog (partition-pruned by symbol)."""
    table = endpoints.catalog().load_table(ICEBERG_TABLE)
    # Test symbols are upper-case letters only, so quoting them into the filter is safe.
    wanted = ", ".join(f"'{symbol}'" for symbol in sorted(set(symbols)))
    rows = table.scan(row_filter=f"symbol IN ({wanted})").to_arrow().to_pylist()
    return [canonical(row) for row in rows]


def api_total(client: httpx.Client, symbol: str) -> int:
    """How many trades of `symbol` the API serves now (one cheap request); raises on an error."""
    return api_total_at(client, symbol)[0]


def api_served(client: httpx.Client, symbols: list[str]) -> int:
    """How many trades of all `symbols` the API serves now (one request per symbol)."""
    return sum(api_total(client, symbol) for symbol in symbols)


def api_total_at(client: httpx.Client, symbol: str) -> tuple[int, int | None]:
    """`api_total` and the table snapshot the answer was read from (None if not said)."""
    response = client.get("/v1/trades", params={"symbol": symbol, "limit": 1})
    response.raise_for_status()
    snapshot = response.headers.get("X-K2-Snapshot-Id")
    return int(response.json()["pagination"]["total"]), int(snapshot) if snapshot else None


def api_trades(client: httpx.Client, symbol: str, **params: Any) -> list[dict[str, Any]]:
    """Every trade the API serves for one symbol, following pagination."""
    trades: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = client.get(
            "/v1/trades", params={"symbol": symbol, "limit": API_PAGE, "offset": offset, **params}
        )
        response.raise_for_status()
        body = response.json()
        trades += body["data"]
        if not body["pagination"]["has_more"]:
            return trades
        offset += API_PAGE


def api_records(client: httpx.Client, symbols: Iterable[str]) -> list[Canonical]:
    """Canonical records of every trade the API serves for `symbols`."""
    return [canonical(t) for symbol in symbols for t in api_trades(client, symbol)]


def hop_reports(
    endpoints: Endpoints, api: httpx.Client, produced: list[Canonical], symbols: list[str]
) -> list[HopReport]:
    """Each hop held to what was produced, in pipeline order; a hop that cannot be read says why."""
    readers: list[tuple[str, Callable[[], list[Canonical]]]] = [
        ("kafka", lambda: kafka_records(endpoints, symbols)[0]),
        ("iceberg", lambda: iceberg_records(endpoints, symbols)),
        ("api", lambda: api_records(api, symbols)),
    ]
    reports = []
    for hop, read in readers:
        try:
            reports.append(compare(hop, produced, read()))
        except Exception as exc:  # the hop's own failure is the finding
            reports.append(unreadable(hop, len(produced), exc))
    return reports


def expect_arrival(
    wait: Callable[[], object],
    endpoints: Endpoints,
    api: httpx.Client,
    produced: list[Canonical],
    symbols: list[str],
) -> None:
    """Run `wait`; if it gives up (deadline, service down), fail naming the hop that lost trades.

    The failure reads: why the wait stopped, then 'first broken hop: iceberg' and each bad
    hop's missing/duplicated/differing examples, then the wait's own details (service logs).
    """
    try:
        wait()
    except (AssertionError, StackUnhealthy, httpx.HTTPError) as exc:
        text = mismatch_text(hop_reports(endpoints, api, produced, symbols))
        if text is None:
            raise  # every hop is exact by now: the wait was only slow; say that as it is
        reason, _, details = str(exc).partition("\n")
        # The message carries the wait's reason and details: chaining would print them twice.
        raise PipelineMismatch(f"{reason}\n{text}\n{details}".rstrip()) from None
