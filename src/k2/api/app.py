"""The FastAPI application: middleware, error envelopes, /health and the /v1 routes.

`create_app` takes the repository as an argument, so tests hand it an in-memory one and
`__main__` the Iceberg one; nothing here knows which.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Final

from fastapi import FastAPI
from starlette.responses import JSONResponse

from k2.api.auth import ApiKeyCheck
from k2.api.correlation import CorrelationIdMiddleware
from k2.api.errors import install_error_handlers
from k2.api.health import HealthProbe
from k2.api.models import HealthResponse
from k2.api.repository import TradeRepository
from k2.api.routes import build_router
from k2.api.serialize import format_instant

API_TITLE: Final = "k2-query-api"
API_VERSION: Final = "1.0.0"
_DESCRIPTION: Final = """Read-only access to the K2 crypto trades in Iceberg (`market_data.trades`).

Every `/v1` route needs the `X-API-Key` header: missing is 401, wrong is 403. `/health`,
`/docs` and `/openapi.json` are open.

Answers are envelopes: `{"success": true, "meta": {"correlation_id", "timestamp"}, "data": ...}`
(plus `pagination` on `/v1/trades`), or `{"success": false, "meta": ..., "error": {"code",
"message", "details"}}`. Send `X-Correlation-ID` to choose the correlation id (letters, digits
and `._:/+=@-`, up to 128 characters; anything else is replaced by a new uuid4); it is echoed
in the response header of the same name.

Decimals are strings with exactly 8 decimal places; timestamps are ISO 8601 UTC with
microseconds and `Z`. Time parameters must carry a timezone.
"""


def create_app(
    repository: TradeRepository,
    *,
    api_key: str,
    health: HealthProbe | None = None,
    background: Callable[[threading.Event], None] | None = None,
) -> FastAPI:
    """The API over `repository`, admitting `api_key`.

    `background`, if given, runs in a daemon thread from start to shutdown and must return
    once its event is set (the Iceberg repository keeps its replica current there).
    """
    probe = health or HealthProbe(repository)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if background is not None:
            worker = threading.Thread(
                target=background, args=(stop,), name="k2-api-background", daemon=True
            )
            worker.start()
        try:
            yield
        finally:
            stop.set()

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(CorrelationIdMiddleware)
    install_error_handlers(app)

    @app.get(
        "/health",
        response_model=HealthResponse,
        summary="Readiness",
        description=(
            "200 when the catalog answers, `market_data.trades` loads and its storage is "
            "reachable; 503 with the reason otherwise. A success is reused for about a "
            "second; no API key needed."
        ),
        responses={503: {"model": HealthResponse, "description": "Not ready, with the reason"}},
        tags=["health"],
    )
    async def health_check() -> JSONResponse:
        result = await probe.check()
        body = HealthResponse(
            status="ok" if result.ok else "unavailable",
            reason=result.reason,
            snapshot_id=result.snapshot_id,
            checked_at=format_instant(datetime.now(UTC)),
            catalog_loads=repository.catalog_loads(),
        )
        return JSONResponse(body.model_dump(), status_code=200 if result.ok else 503)

    app.include_router(build_router(repository, ApiKeyCheck(api_key)), tags=["trades"])
    return app
