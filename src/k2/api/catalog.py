"""The REST catalog client the API reads through, with the timeouts pyiceberg leaves out.

pyiceberg 0.12's RestCatalog sends every request, including the config fetch in its
constructor, without a timeout: a catalog that accepts connections and never answers would
hang a worker thread forever. Every session this subclass creates gets a connect and a read
timeout; S3 reads get theirs through pyiceberg's FileIO properties.
"""

from __future__ import annotations

from typing import Any, Final

from pyiceberg.catalog.rest import RestCatalog
from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter

from k2.api.settings import Settings

CATALOG_NAME: Final = "k2"
CONNECT_TIMEOUT_S: Final = 2.0
READ_TIMEOUT_S: Final = 10.0
S3_CONNECT_TIMEOUT_S: Final = 2.0
S3_REQUEST_TIMEOUT_S: Final = 10.0


class _TimeoutAdapter(HTTPAdapter):
    """An HTTPAdapter that applies a default timeout to requests that name none."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._timeout = timeout

    def send(  # type: ignore[override]
        self, request: PreparedRequest, timeout: Any = None, **kwargs: Any
    ) -> Response:
        """Send with this adapter's timeout unless the caller gave one."""
        chosen = self._timeout if timeout is None else timeout
        return super().send(request, timeout=chosen, **kwargs)


class TimeoutRestCatalog(RestCatalog):
    """RestCatalog whose HTTP sessions all time out (connect, read) instead of hanging."""

    def _create_session(self) -> Session:
        # A private hook, stable in the pinned pyiceberg 0.12.0; both the constructor's
        # config fetch and the long-lived session are made here.
        session: Session = super()._create_session()
        adapter = _TimeoutAdapter((CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


def catalog_properties(settings: Settings) -> dict[str, str]:
    """The pyiceberg properties of the K2 REST catalog and its S3 (MinIO) storage."""
    properties = {
        "uri": settings.iceberg_uri,
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
        "s3.endpoint": settings.s3_endpoint,
        "s3.region": settings.s3_region,
        "s3.connect-timeout": str(S3_CONNECT_TIMEOUT_S),
        "s3.request-timeout": str(S3_REQUEST_TIMEOUT_S),
    }
    if settings.s3_access_key is not None and settings.s3_secret_key is not None:
        properties["s3.access-key-id"] = settings.s3_access_key
        properties["s3.secret-access-key"] = settings.s3_secret_key
    return properties


def open_catalog(settings: Settings) -> RestCatalog:
    """Connect to the catalog (fetches its config: raises if it is unreachable)."""
    return TimeoutRestCatalog(CATALOG_NAME, **catalog_properties(settings))
