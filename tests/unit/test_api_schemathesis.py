"""k2-query-api against its own OpenAPI document: Schemathesis cases sent in-process over ASGI.

The example-based tests check what the answers mean; these check that every operation keeps
the promises the published schema makes, for inputs nobody thought of: no 5xx, only
documented status codes and content types, bodies valid against the documented schemas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pytest
import schemathesis
from hypothesis import settings
from schemathesis import GenerationMode, Response
from schemathesis.checks import not_a_server_error

from k2.api.auth import API_KEY_HEADER
from k2.api.memory import InMemoryTradeRepository
from tests.unit.api_fixtures import AUTH, KEY, sample_app, sample_trades

if TYPE_CHECKING:
    from schemathesis.specs.openapi.schemas import OpenApiCase

# Only the conformance checks: `positive_data_acceptance` would demand a 2xx for any
# schema-valid input, but some rules cannot be written in OpenAPI (start_time <= end_time,
# a real calendar date, a timezone on every instant), so the API rightly answers 422 there.
CONFIG: Final = schemathesis.Config.from_dict(
    {
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
        }
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", sample_app(), config=CONFIG)


def _assert_auth_rule(case: OpenApiCase, response: Response) -> None:
    """/v1 admits exactly KEY; a key is missing or wrong only where Schemathesis negated it.

    Asserting this per case keeps the suite honest: were the key never sent, every /v1 case
    would be a documented 401 and the conformance checks alone would pass.
    """
    if not case.operation.path.startswith("/v1/"):
        return
    if response.request.method != case.operation.method.upper():
        return  # an unsupported method is a 405 before any key is looked at
    sent = response.request.headers.get(API_KEY_HEADER)
    if sent == KEY:
        assert response.status_code not in (401, 403), response.text
        return
    assert case.meta is not None
    assert case.meta.generation.mode is GenerationMode.NEGATIVE, f"key not sent: {sent!r}"
    assert response.status_code == (403 if sent else 401), response.text


@schema.parametrize()
@settings(max_examples=50, deadline=None, derandomize=True, database=None)
def test_every_operation_conforms_to_the_schema(case: OpenApiCase) -> None:
    response = case.call_and_validate(headers=AUTH)
    _assert_auth_rule(case, response)


# Generated symbols and dates rarely name a sample trade, so the documented shape of a full
# answer is checked here on requests that are known to find trades.
@pytest.mark.parametrize(
    ("path", "path_parameters", "query"),
    [
        ("/v1/trades", {}, {"limit": 10_000}),
        ("/v1/summary/{symbol}/{date}", {"symbol": "btcusdt", "date": "2026-01-01"}, {}),
        ("/v1/summary/{symbol}/{date}", {"symbol": "BTCUSDT", "date": "2026-01-02"}, {}),
        ("/v1/symbols", {}, {}),
        ("/v1/stats", {}, {}),
        ("/health", {}, {}),
    ],
)
def test_answers_with_data_conform_to_the_schema(
    path: str, path_parameters: dict[str, str], query: dict[str, Any]
) -> None:
    case = schema[path]["GET"].Case(path_parameters=path_parameters, query=query)
    response = case.call_and_validate(headers=AUTH)
    assert response.status_code == 200, response.text
    if path == "/v1/trades":
        assert len(response.json()["data"]) == len(sample_trades())


OPERATIONS: Final = [(path, method) for path in schema for method in schema[path]]
# A value for every path parameter, so each operation reaches the repository.
PATH_VALUES: Final = {"symbol": "BTCUSDT", "date": "2026-01-01"}


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_unavailable_store_answers_a_documented_503(path: str, method: str) -> None:
    """Fuzzing never reaches the 503 path, yet every operation documents it."""
    operation = schema[path][method]
    names = {parameter.name for parameter in operation.path_parameters}
    case = operation.Case(path_parameters={name: PATH_VALUES[name] for name in names})
    repository = InMemoryTradeRepository.of(sample_trades())
    repository.fail_with = "catalog unreachable: ConnectionError"
    response = case.call(headers=AUTH, app=sample_app(repository))
    assert response.status_code == 503, response.text
    case.validate_response(response, excluded_checks=[not_a_server_error])
