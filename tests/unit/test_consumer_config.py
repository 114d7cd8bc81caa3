"""ConsumerConfig from K2_* variables: defaults, every problem in one error, one line on exit."""

from __future__ import annotations

import pytest

from k2.consumer import cli
from k2.consumer.cli import main
from k2.consumer.clients import consumer_config
from k2.consumer.config import ConfigError, load_config
from k2.model.names import CONSUMER_GROUP, TOPIC


def _ignore_commits(error: object, partitions: object) -> None:
    """An on_commit callback for settings that are only read."""


REQUIRED = {
    "K2_KAFKA_BOOTSTRAP": "kafka:9092",
    "K2_SCHEMA_REGISTRY_URL": "http://registry:8080/apis/ccompat/v7",
    "K2_ICEBERG_URI": "http://iceberg-rest:8181",
    "K2_S3_ENDPOINT": "http://minio:9000",
    "K2_S3_ACCESS_KEY": "access",
    "K2_S3_SECRET_KEY": "very-secret",
}


def test_defaults() -> None:
    config = load_config(REQUIRED)

    assert config.kafka_bootstrap == "kafka:9092"
    assert config.topic == TOPIC
    assert config.group == CONSUMER_GROUP
    assert config.dlq_topic == f"{TOPIC}.dlq"
    assert config.batch_max_records == 20_000
    assert config.batch_max_seconds == 1.0
    assert config.health_port == 8081
    assert config.s3_region == "us-east-1"
    assert config.iceberg_warehouse is None
    assert config.log_level == "INFO"


def test_overrides_and_dlq_follows_the_topic() -> None:
    config = load_config(
        {
            **REQUIRED,
            "K2_KAFKA_TOPIC": "market.crypto.trades.kraken",
            "K2_BATCH_MAX_RECORDS": "500",
            "K2_BATCH_MAX_SECONDS": "0.5",
            "K2_HEALTH_PORT": "9100",
            "K2_LOG_LEVEL": "debug",
            "K2_ICEBERG_WAREHOUSE": "s3://warehouse/",
        }
    )

    assert config.dlq_topic == "market.crypto.trades.kraken.dlq"
    assert (config.batch_max_records, config.batch_max_seconds) == (500, 0.5)
    assert config.health_port == 9100
    assert config.log_level == "DEBUG"
    assert config.iceberg_warehouse == "s3://warehouse/"


def test_every_missing_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"K2_KAFKA_BOOTSTRAP": "kafka:9092", "K2_S3_SECRET_KEY": "  "})

    message = str(caught.value)
    for name in set(REQUIRED) - {"K2_KAFKA_BOOTSTRAP"}:
        assert f"{name} is not set" in message
    assert "K2_KAFKA_BOOTSTRAP" not in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("K2_BATCH_MAX_RECORDS", "lots", "is not an integer > 0"),
        ("K2_BATCH_MAX_RECORDS", "0", "is not an integer > 0"),
        ("K2_BATCH_MAX_SECONDS", "-1", "is not a number > 0"),
        ("K2_BATCH_MAX_SECONDS", "nan", "is not a number > 0"),
        ("K2_HEALTH_PORT", "70000", "is not a TCP port"),
        ("K2_HEALTH_MAX_UNCOMMITTED_S", "soon", "is not a number > 0"),
        ("K2_COMMIT_DEADLINE_S", "0", "is not a number > 0"),
        ("K2_KAFKA_LOST_S", "never", "is not a number > 0"),
        ("K2_LOG_LEVEL", "chatty", "is not one of DEBUG"),
        ("K2_DLQ_TOPIC", TOPIC, "must differ from the topic"),
    ],
)
def test_malformed_values_are_reported(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        load_config({**REQUIRED, name: value})
    assert expected in str(caught.value)


def test_repr_hides_the_secrets() -> None:
    text = repr(load_config(REQUIRED))

    assert "very-secret" not in text
    assert "access" not in text.replace("s3_access", "")
    assert "kafka:9092" in text


def test_main_exits_2_with_one_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_install_signals", lambda stop: None)  # keep pytest's handlers

    status = main({"K2_BATCH_MAX_RECORDS": "x"})

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert err.startswith("k2-consumer: config error: K2_KAFKA_BOOTSTRAP is not set;")
    assert "K2_BATCH_MAX_RECORDS='x' is not an integer > 0" in err


def test_static_membership_only_when_an_instance_id_is_given() -> None:
    assert "group.instance.id" not in consumer_config(load_config(REQUIRED), _ignore_commits)
    pinned = load_config({**REQUIRED, "K2_KAFKA_GROUP_INSTANCE_ID": "consumer-crypto-1"})
    assert consumer_config(pinned, _ignore_commits)["group.instance.id"] == "consumer-crypto-1"


def test_commits_are_heard_and_statistics_feed_kafka_liveness() -> None:
    def on_stats(stats: str) -> None:
        """Statistics go here once a second."""

    settings = consumer_config(load_config(REQUIRED), _ignore_commits, on_stats)

    assert settings["on_commit"] is _ignore_commits
    assert settings["stats_cb"] is on_stats
    assert settings["statistics.interval.ms"] == 1000
    assert settings["enable.auto.commit"] is False
