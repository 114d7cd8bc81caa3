"""The correlation id of each request: taken from X-Correlation-ID or made up, then echoed.

A pure ASGI middleware (no BaseHTTPMiddleware: that one buffers and costs a task per
request). The id lives in the request scope's state, where handlers and error handlers read
it, and goes back on every response this middleware sees.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CORRELATION_HEADER: Final = "X-Correlation-ID"
_HEADER_KEY: Final = CORRELATION_HEADER.lower().encode("latin-1")
# Printable, header-safe and short: anything else is replaced, never echoed into a header.
_VALID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,127}")


def _from_headers(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == _HEADER_KEY:
            text = value.decode("latin-1").strip()
            return text if _VALID.fullmatch(text) else None
    return None


class CorrelationIdMiddleware:
    """Gives every HTTP request a correlation id and adds it to the response headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Store the id in `scope["state"]`, then answer with it in the headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation = _from_headers(scope) or str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if CORRELATION_HEADER not in headers:
                    headers.append(CORRELATION_HEADER, correlation)
            await send(message)

        await self.app(scope, receive, send_with_id)


def correlation_id(request: Request) -> str:
    """The request's correlation id (a fresh one if the middleware did not run)."""
    state = request.scope.setdefault("state", {})
    value = state.get("correlation_id")
    if not isinstance(value, str):
        value = str(uuid.uuid4())
        state["correlation_id"] = value
    return value
