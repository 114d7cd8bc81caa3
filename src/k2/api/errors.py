"""Every failure answers with the same envelope: success false, meta, and an error object.

Handlers turn FastAPI's validation errors, Starlette's HTTP errors (404 route, 405), our own
ApiError, parameter errors, an unavailable repository (503) and anything unexpected (500)
into ErrorResponse JSON with the correlation id, so clients parse one shape.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from k2.api.correlation import CORRELATION_HEADER, correlation_id
from k2.api.query import ParameterError
from k2.api.repository import RepositoryUnavailableError
from k2.api.serialize import format_instant

log = logging.getLogger(__name__)

_CODES: Final = {
    400: "bad_request",
    401: "missing_api_key",
    403: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    422: "validation_error",
    503: "unavailable",
}
_MAX_MESSAGE: Final = 500


class ApiError(Exception):
    """A failure the API reports on purpose, with its status and error code."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = tuple(details)


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    details: Iterable[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The ErrorResponse JSON for one failure."""
    correlation = correlation_id(request)
    body: dict[str, Any] = {
        "success": False,
        "meta": {"correlation_id": correlation, "timestamp": format_instant(datetime.now(UTC))},
        "error": {
            "code": code,
            "message": message[:_MAX_MESSAGE],
            "details": [
                {"location": location, "message": text[:_MAX_MESSAGE]} for location, text in details
            ],
        },
    }
    # Set here too: a 500 is sent by Starlette's outermost middleware, past ours.
    return JSONResponse(
        body, status_code=status_code, headers={**(headers or {}), CORRELATION_HEADER: correlation}
    )


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        (_location(error.get("loc", ())), str(error.get("msg", ""))) for error in exc.errors()
    ]
    message = "; ".join(f"{location}: {text}" for location, text in details) or "invalid request"
    return error_response(request, 422, "validation_error", message, details)


async def _parameter_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ParameterError)
    location = f"{exc.location}.{exc.name}"
    return error_response(
        request, 422, "validation_error", f"{location}: {exc.message}", [(location, exc.message)]
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(request, exc.status_code, exc.code, exc.message, exc.details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES.get(exc.status_code, "http_error")
    return error_response(
        request, exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("repository unavailable: %s", exc)
    return error_response(
        request, 503, "unavailable", f"trade store unavailable: {exc}", headers={"Retry-After": "1"}
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error (correlation id %s)", correlation_id(request), exc_info=exc)
    return error_response(
        request, 500, "internal_error", "internal error; quote the correlation id when reporting"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the envelope-producing handlers on `app`."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ParameterError, _parameter_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RepositoryUnavailableError, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
