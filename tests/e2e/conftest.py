"""K2's E2E fixtures: the step document's four, and K2's clients.

docker_manager, minimal_stack, full_stack and api_client as the step document names them;
plus `deployment`, `endpoints`, `api` (a blocking client), `stack_guard`, `feed_pool` and
`performance_monitor`.

The stack itself is the e2e_stack plugin's (`stack_manager`, configured in pyproject.toml);
these fixtures only give it K2's names and K2's clients. The client fixtures ask the plugin's
`stack_target` first: against an already running K2 (--e2e-target) they use its addresses and
never reach `stack_manager`, so the tests built on them alone can be marked `operational`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from e2e_stack import Deployment, Settings, StackManager, Target
from tests.e2e.k2_plugin import PERFORMANCE
from tests.e2e.utils.docker_manager import E2EDockerManager
from tests.e2e.utils.performance_monitor import PerformanceMonitor

if TYPE_CHECKING:
    # Imported where a fixture needs them: httpx (its CLI pulls in rich, since rich is
    # installed) and the Kafka and registry clients (OAuth and crypto libraries) took 0.35 s
    # of every run's start-up, measured, before the first test of a run that uses none.
    import httpx

    from k2.feed.pool import FeedPool
    from tests.e2e.utils.hops import Endpoints

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
def deployment(request: pytest.FixtureRequest, stack_target: Target | None) -> Deployment:
    """The running K2 the tests talk to: the --e2e-target, else this session's full stack."""
    return _deployment(request, stack_target)


def _deployment(request: pytest.FixtureRequest, stack_target: Target | None) -> Deployment:
    """The target, or the full stack, started now if it is not running yet.

    Through `request`, so that a run against a target never starts one, and the tests that
    use only this can be marked operational.
    """
    if stack_target is not None:
        return stack_target
    request.getfixturevalue("full_stack")
    manager: E2EDockerManager = request.getfixturevalue("docker_manager")
    return manager.project


@pytest.fixture
def stack_guard(request: pytest.FixtureRequest, stack_target: Target | None) -> Callable[[], None]:
    """What a wait calls about once a second: raises when a service of the stack is down."""
    if stack_target is not None:
        return stack_target.raise_if_unreachable
    manager: E2EDockerManager = request.getfixturevalue("docker_manager")
    return manager.raise_if_broken


@pytest.fixture
async def api_client(
    anyio_backend: str, endpoints: Endpoints, deployment: Deployment
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on k2-query-api's published port, with the API key.

    The key comes from K2_API_KEY, else from the value the e2e override gives the API
    service (the development key, which only that file states); against a target, from
    its file.
    """
    import httpx

    async with httpx.AsyncClient(
        base_url=endpoints.api_url, headers={"X-API-Key": api_key(deployment)}, timeout=30.0
    ) as client:
        yield client


def api_key(deployment: Deployment) -> str:
    """The API key the deployment's k2-query-api takes."""
    # Compose resolved ${K2_API_KEY:-dev key} from this environment: one source for the key.
    return deployment.service_env(API_SERVICE)[API_KEY_VARIABLE]


@pytest.fixture
def endpoints(deployment: Deployment) -> Endpoints:
    """Where the running K2's services are, from this machine (fresh after restarts)."""
    from tests.e2e.utils.hops import Endpoints

    return Endpoints.of(deployment)


@pytest.fixture
def api(endpoints: Endpoints, deployment: Deployment) -> Iterator[httpx.Client]:
    """A blocking API client with the key, for polling from threads and plain tests."""
    import httpx

    with httpx.Client(
        base_url=endpoints.api_url, headers={"X-API-Key": api_key(deployment)}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def e2e_cpus(stack_settings: Settings) -> float | None:
    """The CPU limit the run's stack and tests share (--e2e-cpus), None when unlimited."""
    return stack_settings.cpus


@pytest.fixture(scope="session")
def feed_pool(request: pytest.FixtureRequest, stack_target: Target | None) -> Iterator[FeedPool]:
    """The feed's worker processes, connected once for the session (see k2.feed.pool)."""
    from k2.feed.pool import FeedPool
    from tests.e2e.utils.hops import Endpoints

    endpoints = Endpoints.of(_deployment(request, stack_target))
    with FeedPool(endpoints.bootstrap, endpoints.registry_url) as pool:
        yield pool


@pytest.fixture(scope="session")
def performance_monitor(pytestconfig: pytest.Config) -> PerformanceMonitor:
    """The session's measured runs: reported in the terminal summary and the artifacts."""
    return pytestconfig.stash[PERFORMANCE]
