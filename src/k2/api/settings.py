"""The API's configuration, read once from the environment at start.

K2_API_KEY has no default on purpose: a service that falls back to a well-known key is open
to anyone who read the docs. The development key is stated only in the e2e compose override.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from k2.model.names import COMMITS_TOPIC

DEFAULT_ICEBERG_URI: Final = "http://iceberg-rest:8181"
DEFAULT_S3_ENDPOINT: Final = "http://minio:9000"
DEFAULT_S3_REGION: Final = "us-east-1"
DEFAULT_REPLICA_MAX_ROWS: Final = 1_000_000
DEFAULT_TABLE_MAX_AGE_S: Final = 0.4


class SettingsError(ValueError):
    """The environment does not describe a runnable API; the message says what to set."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the API reads from its environment.

    S3 keys are optional: unset, pyarrow falls back to the standard AWS credential chain.
    `replica_max_rows` (K2_API_REPLICA_MAX_ROWS) bounds the in-memory replica; 0 turns it
    off, and every request then scans Iceberg with pushdown. `table_max_age_s`
    (K2_API_TABLE_MAX_AGE_S) is how old the shared table metadata a request reads may be.
    `kafka_bootstrap` (K2_KAFKA_BOOTSTRAP), when set, lets the API hear the writer's commit
    notices on `commits_topic` (K2_COMMITS_TOPIC) and follow each commit at once.
    Secrets are kept out of `repr`, so a logged Settings leaks nothing.
    """

    api_key: str = field(repr=False)
    iceberg_uri: str = DEFAULT_ICEBERG_URI
    s3_endpoint: str = DEFAULT_S3_ENDPOINT
    s3_access_key: str | None = None
    s3_secret_key: str | None = field(default=None, repr=False)
    s3_region: str = DEFAULT_S3_REGION
    replica_max_rows: int = DEFAULT_REPLICA_MAX_ROWS
    table_max_age_s: float = DEFAULT_TABLE_MAX_AGE_S
    kafka_bootstrap: str | None = None
    commits_topic: str = COMMITS_TOPIC

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from `environ` (os.environ in production); SettingsError if K2_API_KEY is unset.

        Blank values count as unset, so `K2_API_KEY=` in a compose file is caught too.
        """

        def get(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        api_key = get("K2_API_KEY")
        if api_key is None:
            raise SettingsError(
                "K2_API_KEY is not set: give the API key clients must send in X-API-Key"
            )
        access_key, secret_key = get("K2_S3_ACCESS_KEY"), get("K2_S3_SECRET_KEY")
        max_rows_text = get("K2_API_REPLICA_MAX_ROWS")
        try:
            max_rows = DEFAULT_REPLICA_MAX_ROWS if max_rows_text is None else int(max_rows_text)
        except ValueError:
            max_rows = -1
        if max_rows < 0:
            raise SettingsError(
                f"K2_API_REPLICA_MAX_ROWS={max_rows_text!r} is not a whole number >= 0 "
                "(0 turns the in-memory replica off)"
            )
        max_age_text = get("K2_API_TABLE_MAX_AGE_S")
        try:
            max_age = DEFAULT_TABLE_MAX_AGE_S if max_age_text is None else float(max_age_text)
        except ValueError:
            max_age = -1.0
        if not 0 <= max_age <= 60:
            raise SettingsError(
                f"K2_API_TABLE_MAX_AGE_S={max_age_text!r} is not a number of seconds from 0 "
                "(every request loads the table) to 60"
            )
        if (access_key is None) != (secret_key is None):
            raise SettingsError(
                "K2_S3_ACCESS_KEY and K2_S3_SECRET_KEY go together: set both or neither"
            )
        return cls(
            api_key=api_key,
            iceberg_uri=get("K2_ICEBERG_URI") or DEFAULT_ICEBERG_URI,
            s3_endpoint=get("K2_S3_ENDPOINT") or DEFAULT_S3_ENDPOINT,
            s3_access_key=access_key,
            s3_secret_key=secret_key,
            s3_region=get("K2_S3_REGION") or DEFAULT_S3_REGION,
            replica_max_rows=max_rows,
            table_max_age_s=max_age,
            kafka_bootstrap=get("K2_KAFKA_BOOTSTRAP"),
            commits_topic=get("K2_COMMITS_TOPIC") or COMMITS_TOPIC,
        )
