"""K2's E2E fixtures: the step document's four, and K2's clients.

docker_manager, minimal_stack, full_stack and api_client as the step document names them;
plus `endpoints`, `api` (a blocking client), `feed_pool` and `performance_monitor`.

The stack itself is the e2e_stack plugin's (`stack_manager`, configured in pyproject.toml);
these fixtures only give it K2's names and K2's clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from e2e_stack import ComposeProject, Settings, StackManager
from k2.feed.pool import FeedPool
from tests.e2e.k2_plugin import PERFORMANCE
from tests.e2e.utils.docker_manager import E2EDockerManager
from tests.e2e.utils.hops import Endpoints
from tests.e2e.utils.performance_monitor import PerformanceMonitor

API_SERVICE = "k2-query-api"
API_PORT = 8000
API_KEY_VARIABLE = "K2_API_KEY"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-scoped, so session-scoped async fixtures share one event loop."""
    return "asyncio"


@pytest.fixture(scope="session")
def docker_manager(stack_manager: StackManager) -> E2EDockerManager:
    """The session's stack under the step document's name (stack_manager tears it down)."""
    return E2EDockerManager(stack=stack_manager)


@pytest.fixture(scope="session")
async def minimal_stack(
    anyio_backend: str, stack_settings: Settings, docker_manager: E2EDockerManager
) -> dict[str, str]:
    """Kafka, registry, MinIO, PostgreSQL, Iceberg REST (or more, under --e2e-profile full)."""
    if stack_settings.profile == "full":
        return await docker_manager.start_full_stack()
    return await docker_manager.start_minimal_stack()


@pytest.fixture(scope="session")
async def full_stack(anyio_backend: str, docker_manager: E2EDockerManager) -> dict[str, str]:
    """The minimal stack plus k2-query-api and consumer-crypto, grown in place."""
    return await docker_manager.start_full_stack()


@pytest.fixture
async def api_client(
    anyio_backend: str, full_stack: dict[str, str], docker_manager: E2EDockerManager
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on k2-query-api's published port, with the API key.

    The key comes from K2_API_KEY, else from the value the e2e override gives the API
    service (the development key, which only that file states).
    """
    project = docker_manager.project
    port = project.host_port(API_SERVICE, API_PORT)
    async with httpx.AsyncClient(
        base_url=f"http://{project.host}:{port}",
        headers={"X-API-Key": _api_key(project)},
        timeout=30.0,
    ) as client:
        yield client


def _api_key(project: ComposeProject) -> str:
    # Compose resolved ${K2_API_KEY:-dev key} from this environment: one source for the key.
    return project.service_env(API_SERVICE)[API_KEY_VARIABLE]


@pytest.fixture
def endpoints(full_stack: dict[str, str], docker_manager: E2EDockerManager) -> Endpoints:
    """Where the running full stack's services are, from the host (fresh after restarts)."""
    return Endpoints.of(docker_manager.project)


@pytest.fixture
def api(endpoints: Endpoints, docker_manager: E2EDockerManager) -> Iterator[httpx.Client]:
    """A blocking API client with the key, for polling from threads and plain tests."""
    with httpx.Client(
        base_url=endpoints.api_url,
        headers={"X-API-Key": _api_key(docker_manager.project)},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture(scope="session")
def e2e_cpus(stack_settings: Settings) -> float | None:
    """The CPU limit the run's stack and tests share (--e2e-cpus), None when unlimited."""
    return stack_settings.cpus


@pytest.fixture(scope="session")
def feed_pool(full_stack: dict[str, str], docker_manager: E2EDockerManager) -> Iterator[FeedPool]:
    """The feed's worker processes, connected once for the session (see k2.feed.pool)."""
    endpoints = Endpoints.of(docker_manager.project)
    with FeedPool(endpoints.bootstrap, endpoints.registry_url) as pool:
        yield pool


@pytest.fixture(scope="session")
def performance_monitor(pytestconfig: pytest.Config) -> PerformanceMonitor:
    """The session's measured runs: reported in the terminal summary and the artifacts."""
    return pytestconfig.stash[PERFORMANCE]
