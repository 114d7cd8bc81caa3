"""The X-API-Key check on every /v1 route: missing is 401, wrong is 403.

Both keys are hashed before the constant-time compare, so neither the key's content nor its
length shows in the response time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from fastapi import Security
from fastapi.security import APIKeyHeader

from k2.api.errors import ApiError

API_KEY_HEADER: Final = "X-API-Key"

api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    scheme_name="ApiKey",
    description="The key the service was started with (K2_API_KEY).",
)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


class ApiKeyCheck:
    """A FastAPI dependency that admits requests carrying the configured key."""

    def __init__(self, expected_key: str) -> None:
        if not expected_key:
            raise ValueError("the API key must not be empty")
        self._expected = _digest(expected_key)

    async def __call__(self, key: str | None = Security(api_key_scheme)) -> None:
        """Raise ApiError 401 without a key, 403 with a wrong one."""
        if not key:
            raise ApiError(
                401, "missing_api_key", f"send the API key in the {API_KEY_HEADER} header"
            )
        if not hmac.compare_digest(_digest(key), self._expected):
            raise ApiError(
                403, "invalid_api_key", f"the {API_KEY_HEADER} header holds no valid key"
            )
