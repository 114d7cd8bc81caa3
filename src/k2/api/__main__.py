"""`python -m k2.api`: serve k2-query-api with uvicorn on 0.0.0.0:8000, one worker.

Exit status 2, after one line on stderr, when the environment is incomplete (no K2_API_KEY).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Mapping
from typing import Final

import uvicorn

from k2.api.app import create_app
from k2.api.catalog import open_catalog
from k2.api.commit_listener import CommitListener, kafka_source
from k2.api.iceberg_repository import IcebergTradeRepository
from k2.api.settings import Settings, SettingsError

HOST: Final = "0.0.0.0"  # noqa: S104 - in a container, the published port is the boundary
PORT: Final = 8000


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the server until it is stopped; 2 if the configuration is incomplete."""
    try:
        settings = Settings.from_env(os.environ if environ is None else environ)
    except SettingsError as exc:
        print(f"k2-query-api: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    notices = (
        CommitListener(kafka_source(settings.kafka_bootstrap), settings.commits_topic)
        if settings.kafka_bootstrap
        else None
    )
    repository = IcebergTradeRepository(
        functools.partial(open_catalog, settings),
        replica_max_rows=settings.replica_max_rows,
        table_max_age_s=settings.table_max_age_s,
        notices=notices,
    )
    app = create_app(repository, api_key=settings.api_key, background=repository.follow)
    # No access log: a line per request is CPU here and in the engine's log driver, and at a
    # client's polling rate it drowned the log the failure bundles show.
    uvicorn.run(
        app,
        host=HOST,
        port=PORT,
        workers=1,
        log_level="info",
        access_log=False,
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
