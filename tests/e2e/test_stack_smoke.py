"""Smoke tests of the minimal stack: real bytes through Kafka, the registry, Iceberg and MinIO."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pyarrow import fs
from pyiceberg.catalog import Catalog, load_catalog

from e2e_stack import ComposeProject, Engine
from e2e_stack.sweep import leftovers
from tests.e2e.utils.docker_manager import E2EDockerManager

pytestmark = pytest.mark.e2e

SMOKE_SCHEMA = """
{"type": "record", "name": "SmokeTrade", "namespace": "com.k2.smoke", "fields": [
  {"name": "symbol", "type": "string"},
  {"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
                              "precision": 18, "scale": 8}},
  {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-micros"}}
]}
"""
CONSUME_DEADLINE_S = 60.0


@pytest.fixture
def stack(minimal_stack: dict[str, str], docker_manager: E2EDockerManager) -> ComposeProject:
    """The running minimal stack's compose project (ports, credentials, exec)."""
    return docker_manager.project


def _registry_url(stack: ComposeProject) -> str:
    return f"http://{stack.host}:{stack.host_port('schema-registry', 8080)}/apis/ccompat/v7"


def _bootstrap(stack: ComposeProject) -> str:
    return f"{stack.host}:{stack.host_port('kafka', 9094)}"


def _records(count: int) -> list[dict[str, Any]]:
    base = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    return [
        {
            "symbol": ("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3],
            "price": Decimal(f"{40000 + i}.{i:08d}"),
            "timestamp": base.replace(microsecond=(base.microsecond + i) % 1_000_000),
        }
        for i in range(count)
    ]


def _roundtrip_avro(stack: ComposeProject, count: int) -> None:
    """Register, produce `count` Avro records from the host, consume them back intact."""
    topic = f"smoke.{uuid.uuid4().hex[:8]}"
    registry = SchemaRegistryClient({"url": _registry_url(stack)})
    serializer = AvroSerializer(registry, SMOKE_SCHEMA)
    deserializer = AvroDeserializer(registry)
    sent = _records(count)

    producer = Producer({"bootstrap.servers": _bootstrap(stack), "enable.idempotence": True})
    delivery_errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            delivery_errors.append(str(err))

    for record in sent:
        value = serializer(record, SerializationContext(topic, MessageField.VALUE))
        producer.produce(
            topic,
            key=record["symbol"].encode(),
            value=value,
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0, "producer could not deliver within 30 s"
    assert not delivery_errors

    schema_id = registry.get_latest_version(f"{topic}-value").schema_id
    assert schema_id is not None
    assert registry.get_schema(schema_id).schema_str is not None

    consumer = Consumer(
        {
            "bootstrap.servers": _bootstrap(stack),
            "group.id": f"smoke-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    try:
        while len(received) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received.append(
                deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
            )
    finally:
        consumer.close()
    assert len(received) == count, (
        f"consumed {len(received)} of {count} records from {topic} within "
        f"{CONSUME_DEADLINE_S:.0f}s; last: {received[-1:]}"
    )
    key = lambda r: (r["timestamp"], r["symbol"])  # noqa: E731
    assert sorted(received, key=key) == sorted(sent, key=key)


def test_avro_roundtrip_through_registry_and_kafka(stack: ComposeProject) -> None:
    _roundtrip_avro(stack, count=300)


def _catalog(stack: ComposeProject) -> Catalog:
    s3 = stack.service_env("minio")
    return load_catalog(
        "k2",
        type="rest",
        uri=f"http://{stack.host}:{stack.host_port('iceberg-rest', 8181)}",
        **{
            "s3.endpoint": f"http://{stack.host}:{stack.host_port('minio', 9000)}",
            "s3.access-key-id": s3["MINIO_ROOT_USER"],
            "s3.secret-access-key": s3["MINIO_ROOT_PASSWORD"],
            "s3.region": stack.service_env("iceberg-rest")["AWS_REGION"],
        },
    )


def _minio_keys(stack: ComposeProject, prefix: str) -> set[str]:
    s3 = stack.service_env("minio")
    minio = fs.S3FileSystem(
        access_key=s3["MINIO_ROOT_USER"],
        secret_key=s3["MINIO_ROOT_PASSWORD"],
        endpoint_override=f"{stack.host}:{stack.host_port('minio', 9000)}",
        scheme="http",
        region=stack.service_env("iceberg-rest")["AWS_REGION"],
    )
    infos = minio.get_file_info(fs.FileSelector(prefix, recursive=True))
    return {info.path for info in infos if info.type == fs.FileType.File}


def _catalog_rows(stack: ComposeProject, namespace: str) -> list[list[str]]:
    pg = stack.service_env("postgres")
    sql = "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables"
    out = stack.engine.execute(
        "postgres",
        ["psql", "-U", pg["POSTGRES_USER"], "-d", pg["POSTGRES_DB"], "-At", "-F", "|", "-c", sql],
    )
    rows = [line.split("|") for line in out.splitlines() if line]
    return [row for row in rows if row[0] == namespace]


def test_iceberg_table_roundtrip_lands_in_minio_and_postgres(
    stack: ComposeProject,
) -> None:
    namespace = f"smoke_{uuid.uuid4().hex[:8]}"
    catalog = _catalog(stack)
    catalog.create_namespace(namespace)
    rows = pa.table(
        {
            "symbol": pa.array(["BTCUSDT", "ETHUSDT", "BTCUSDT"]),
            "price": pa.array(
                [Decimal("43000.12345678"), Decimal("2300.00000001"), Decimal("0.00000001")],
                type=pa.decimal128(18, 8),
            ),
            "timestamp": pa.array(
                [datetime(2026, 1, 1, 0, 0, 0, i, tzinfo=UTC) for i in (1, 2, 3)],
                type=pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    table = catalog.create_table(f"{namespace}.trades", schema=rows.schema)
    table.append(rows)

    read_back = catalog.load_table(f"{namespace}.trades").scan().to_arrow()
    assert read_back.sort_by("timestamp").to_pylist() == rows.to_pylist()

    location = table.metadata.location.removeprefix("s3://")
    keys = _minio_keys(stack, location)
    data_files = {task.file.file_path.removeprefix("s3://") for task in table.scan().plan_files()}
    assert data_files, "the append produced no data file"
    assert data_files <= keys, f"data files missing from MinIO: {data_files - keys}"
    assert any(key.endswith(".metadata.json") for key in keys)

    catalog_rows = _catalog_rows(stack, namespace)
    assert catalog_rows == [[namespace, "trades", table.metadata_location]]


@pytest.mark.anyio
async def test_second_stack_runs_beside_the_first(stack: ComposeProject) -> None:
    """The step document's E2EDockerManager(), on its own outside the fixtures, beside ours.

    Its stack is labelled as this process's, so a run killed mid-test leaves it to the next
    run's sweep; minimal whatever the first runs: isolation is the point.
    """
    twin = E2EDockerManager()
    try:
        services = await twin.start_minimal_stack()
        assert "kafka" in await twin.get_service_logs("kafka", lines=5000)
        published = twin.project.published()
        assert {service for service, _ in published} == set(services)
        first_ports = {stack.host_port(s, p) for s, p in published}
        twin_ports = {twin.project.host_port(s, p) for s, p in published}
        assert len(first_ports) == len(published) == len(twin_ports)
        assert not first_ports & twin_ports
        _roundtrip_avro(twin.project, count=20)
    finally:
        await twin.stop_stack()
    assert leftovers(Engine(), twin.project.name) == {
        "containers": [],
        "networks": [],
        "volumes": [],
    }
