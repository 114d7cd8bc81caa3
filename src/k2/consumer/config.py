"""The consumer's settings, read once from `K2_*` environment variables into a frozen dataclass.

Every problem is collected before failing, so a misconfigured container says everything that is
wrong in one line instead of one restart per mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from k2.model.names import COMMITS_TOPIC, CONSUMER_GROUP, TOPIC

_T = TypeVar("_T")

DEFAULT_BATCH_MAX_RECORDS: Final = 20_000
DEFAULT_BATCH_MAX_SECONDS: Final = 1.0
# Inside a container the health port must be reachable from the published port, not only
# from loopback.
DEFAULT_HEALTH_HOST: Final = "0.0.0.0"  # noqa: S104
DEFAULT_HEALTH_PORT: Final = 8081
DEFAULT_HEALTH_MAX_POLL_AGE_S: Final = 10.0
DEFAULT_HEALTH_MAX_UNCOMMITTED_S: Final = 30.0
DEFAULT_COMMIT_DEADLINE_S: Final = 30.0
DEFAULT_KAFKA_LOST_S: Final = 15.0
DEFAULT_S3_REGION: Final = "us-east-1"
DEFAULT_CLIENT_ID: Final = "k2-consumer-crypto"
DEFAULT_CATALOG_NAME: Final = "k2"


class ConfigError(ValueError):
    """Missing or malformed settings; the message lists every problem found."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerConfig:
    """What `python -m k2.consumer` needs to know, validated once at start.

    Secrets are excluded from repr so the config can be logged.
    """

    kafka_bootstrap: str
    schema_registry_url: str
    iceberg_uri: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str = DEFAULT_S3_REGION
    iceberg_catalog_name: str = DEFAULT_CATALOG_NAME
    iceberg_warehouse: str | None = None
    topic: str = TOPIC
    group: str = CONSUMER_GROUP
    client_id: str = DEFAULT_CLIENT_ID
    group_instance_id: str | None = None
    """Static group membership: a restarted instance takes its partitions back at once
    instead of waiting out the session timeout of its dead predecessor (45 s)."""
    dlq_topic: str = f"{TOPIC}.dlq"
    commits_topic: str = COMMITS_TOPIC
    """One notice per Iceberg commit, for readers (see k2.model.commit_notice)."""
    batch_max_records: int = DEFAULT_BATCH_MAX_RECORDS
    batch_max_seconds: float = DEFAULT_BATCH_MAX_SECONDS
    health_host: str = DEFAULT_HEALTH_HOST
    health_port: int = DEFAULT_HEALTH_PORT
    health_max_poll_age_s: float = DEFAULT_HEALTH_MAX_POLL_AGE_S
    health_max_uncommitted_s: float = DEFAULT_HEALTH_MAX_UNCOMMITTED_S
    commit_deadline_s: float = DEFAULT_COMMIT_DEADLINE_S
    """An Iceberg commit that makes no progress this long is given up on: the process exits
    (status 3) and its restart resumes from the table (k2.consumer.commit_timing tells
    progress: a slow commit that moves is waited for). Nothing else can end a commit stuck on
    a socket that will never answer (no read timeout reaches pyarrow's S3 client on Linux or
    pyiceberg's REST session); K2's plan allows 30 s for recovery from any fault."""
    kafka_lost_s: float = DEFAULT_KAFKA_LOST_S
    """No Kafka broker known and none answering for this long: the process exits (status 4)
    so that its restart bootstraps again. librdkafka 2.16 can drop every broker it knows on a
    Metadata answer that lists none (a broker just restarted, still fenced) and then never
    reconnects (confluentinc/librdkafka#5301); seen here after a Kafka restart. A normal
    restart leaves no broker known for 3-6 s."""
    log_level: str = "INFO"

    def __repr__(self) -> str:
        shown = {
            name: getattr(self, name)
            for name in self.__slots__
            if name not in {"s3_access_key", "s3_secret_key"}
        }
        return f"ConsumerConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _integer(text: str) -> int:
    return int(text.strip())


def _number(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(text)
    return value


_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


class _Reader:
    """Reads one variable at a time and remembers every problem instead of raising."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def required(self, name: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            self.problems.append(f"{name} is not set")
        return value

    def optional(self, name: str, default: str) -> str:
        value = self.env.get(name, "").strip()
        return value or default

    def parsed(
        self,
        name: str,
        default: _T,
        parse: Callable[[str], _T],
        check: Callable[[_T], bool],
        expected: str,
    ) -> _T:
        text = self.env.get(name, "").strip()
        if not text:
            return default
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not check(value):
            self.problems.append(f"{name}={text!r} is not {expected}")
            return default
        return value

    def positive_int(self, name: str, default: int) -> int:
        return self.parsed(name, default, _integer, lambda v: v > 0, "an integer > 0")

    def positive_number(self, name: str, default: float) -> float:
        return self.parsed(name, default, _number, lambda v: v > 0, "a number > 0")


def load_config(env: Mapping[str, str]) -> ConsumerConfig:
    """The config described by `env` (os.environ in production), or ConfigError naming each fault.

    Required: K2_KAFKA_BOOTSTRAP, K2_SCHEMA_REGISTRY_URL, K2_ICEBERG_URI, K2_S3_ENDPOINT,
    K2_S3_ACCESS_KEY, K2_S3_SECRET_KEY. Everything else has a default (see ConsumerConfig).
    """
    read = _Reader(env)
    topic = read.optional("K2_KAFKA_TOPIC", TOPIC)
    config = ConsumerConfig(
        kafka_bootstrap=read.required("K2_KAFKA_BOOTSTRAP"),
        schema_registry_url=read.required("K2_SCHEMA_REGISTRY_URL"),
        iceberg_uri=read.required("K2_ICEBERG_URI"),
        s3_endpoint=read.required("K2_S3_ENDPOINT"),
        s3_access_key=read.required("K2_S3_ACCESS_KEY"),
        s3_secret_key=read.required("K2_S3_SECRET_KEY"),
        s3_region=read.optional("K2_S3_REGION", DEFAULT_S3_REGION),
        iceberg_catalog_name=read.optional("K2_ICEBERG_CATALOG_NAME", DEFAULT_CATALOG_NAME),
        iceberg_warehouse=read.optional("K2_ICEBERG_WAREHOUSE", "") or None,
        topic=topic,
        group=read.optional("K2_CONSUMER_GROUP", CONSUMER_GROUP),
        client_id=read.optional("K2_KAFKA_CLIENT_ID", DEFAULT_CLIENT_ID),
        group_instance_id=read.optional("K2_KAFKA_GROUP_INSTANCE_ID", "") or None,
        dlq_topic=read.optional("K2_DLQ_TOPIC", f"{topic}.dlq"),
        commits_topic=read.optional("K2_COMMITS_TOPIC", f"{topic}.commits"),
        batch_max_records=read.positive_int("K2_BATCH_MAX_RECORDS", DEFAULT_BATCH_MAX_RECORDS),
        batch_max_seconds=read.positive_number("K2_BATCH_MAX_SECONDS", DEFAULT_BATCH_MAX_SECONDS),
        health_host=read.optional("K2_HEALTH_HOST", DEFAULT_HEALTH_HOST),
        health_port=read.parsed(
            "K2_HEALTH_PORT",
            DEFAULT_HEALTH_PORT,
            _integer,
            lambda v: 0 < v < 65536,
            "a TCP port (1-65535)",
        ),
        health_max_poll_age_s=read.positive_number(
            "K2_HEALTH_MAX_POLL_AGE_S", DEFAULT_HEALTH_MAX_POLL_AGE_S
        ),
        health_max_uncommitted_s=read.positive_number(
            "K2_HEALTH_MAX_UNCOMMITTED_S", DEFAULT_HEALTH_MAX_UNCOMMITTED_S
        ),
        commit_deadline_s=read.positive_number("K2_COMMIT_DEADLINE_S", DEFAULT_COMMIT_DEADLINE_S),
        kafka_lost_s=read.positive_number("K2_KAFKA_LOST_S", DEFAULT_KAFKA_LOST_S),
        log_level=read.parsed(
            "K2_LOG_LEVEL",
            "INFO",
            str.upper,
            lambda v: v in _LOG_LEVELS,
            "one of " + ", ".join(_LOG_LEVELS),
        ),
    )
    if config.dlq_topic == config.topic:
        read.problems.append(f"K2_DLQ_TOPIC={config.dlq_topic!r} must differ from the topic")
    if config.commits_topic in (config.topic, config.dlq_topic):
        read.problems.append(
            f"K2_COMMITS_TOPIC={config.commits_topic!r} must differ from the topic and the DLQ"
        )
    if read.problems:
        raise ConfigError("; ".join(read.problems))
    return config
