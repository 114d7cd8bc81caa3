"""E2E fixtures (the seed's names): docker_manager, minimal_stack, full_stack, api_client.

Also: `endpoints` and `api` (a blocking client) for the pipeline tests, and
`performance_monitor`, which collects measured runs for the end-of-run report.

pytest-docker's own fixtures are overridden to describe this run's project: both compose
files plus a generated labels overlay, a project name unique to the run and xdist worker,
and profile-aware setup and cleanup commands. Override any of them in a nearer conftest to
change one step, as with pytest-docker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pytest_docker.plugin import DockerComposeExecutor

from k2.feed.pool import FeedPool
from tests.e2e.plugin import E2ESession, e2e_session
from tests.e2e.utils import docker_manager as dm
from tests.e2e.utils import reuse
from tests.e2e.utils.compose_project import ComposeProject, engine_host
from tests.e2e.utils.cpu_limit import CpuLimit, CpuLimitError, remove_unused
from tests.e2e.utils.hops import Endpoints
from tests.e2e.utils.performance_monitor import PerformanceMonitor
from tests.e2e.utils.preflight import PreflightError
from tests.e2e.utils.redact import Redactor, secrets_in
from tests.e2e.utils.run_identity import LABEL_CONFIG_HASH, LABEL_KEEP, PROJECT_PREFIX
from tests.e2e.utils.stats_sampler import StatsSampler
from tests.e2e.utils.sweep import sweep

API_SERVICE = "k2-query-api"
API_PORT = 8000
API_KEY_VARIABLE = "K2_API_KEY"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Session-scoped, so session-scoped async fixtures share one event loop."""
    return "asyncio"


@pytest.fixture(scope="session")
def k2_e2e(pytestconfig: pytest.Config) -> E2ESession:
    """The layer's per-process state (options, run identity)."""
    return e2e_session(pytestconfig)


@pytest.fixture(scope="session")
def compose_project(pytestconfig: pytest.Config, k2_e2e: E2ESession) -> ComposeProject:
    """The run's project, after the preflight checks; pytest stops here if one fails.

    One `compose config` here, with every profile (validation, images, labels, the reuse
    hash, cleanup); the active profile's model is resolved while `up` runs.
    """
    root = pytestconfig.rootpath
    options = k2_e2e.options
    probe = ComposeProject.create(
        root, "k2e2e-preflight", (options.profile,), root / ".build" / "e2e" / "preflight"
    )
    try:
        everything = dm.run_preflight(probe)
    except PreflightError as exc:
        pytest.exit(f"k2-e2e preflight: {exc}", returncode=4)
    labels = k2_e2e.identity.labels()
    cgroup_parent = None
    if options.cpus is not None:
        limit = CpuLimit(options.cpus, PROJECT_PREFIX)
        try:
            limit.check(str(probe.docker.info().cgroup_driver), engine_host() == "127.0.0.1")
            limit.create()
        except CpuLimitError as exc:
            pytest.exit(f"k2-e2e preflight: {exc}", returncode=4)
        # This process (the watch) and the feed workers it starts share the limit too.
        k2_e2e.cpu_limit = (limit, limit.join(os.getpid()))
        cgroup_parent = limit.cgroup_parent
    if options.reuse:
        digest = reuse.config_hash(everything, probe.docker)
        name = reuse.reuse_project_name(digest, k2_e2e.worker)
        env_dir = root / ".build" / "e2e" / "reuse"
        labels |= {LABEL_KEEP: "true", LABEL_CONFIG_HASH: digest}
    else:
        name = k2_e2e.identity.project_name(k2_e2e.worker)
        env_dir = root / ".build" / "e2e" / "runs" / name
        if options.keep:
            labels |= {LABEL_KEEP: "true"}
    project = ComposeProject.create(
        root,
        name,
        (options.profile,),
        env_dir,
        labels=labels,
        host=engine_host(),
        everything=everything,
        cgroup_parent=cgroup_parent,
    )
    # The model holds every secret as compose resolved it, K2_API_KEY from the environment too.
    k2_e2e.redactor = Redactor(secrets_in(everything))
    return project


@pytest.fixture(scope="session")
def docker_compose_file(compose_project: ComposeProject) -> list[str]:
    """Base file, e2e override, then this run's labels overlay."""
    return [str(path) for path in compose_project.compose_files]


@pytest.fixture(scope="session")
def docker_compose_project_name(compose_project: ComposeProject) -> str:
    """Unique per run and per xdist worker (stable per config hash under --e2e-reuse)."""
    return compose_project.name


@pytest.fixture(scope="session")
def docker_compose_command(compose_project: ComposeProject) -> str:
    """Compose v2 with this project's variables file (Kafka's host port)."""
    return f'docker compose --env-file "{compose_project.env_file}"'


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    """Start a profile detached; `{profile}` is filled in per profile started."""
    return dm.default_setup()


@pytest.fixture(scope="session")
def docker_cleanup(compose_project: ComposeProject) -> list[str]:
    """`down -v --remove-orphans` with every profile the compose files define."""
    everything = compose_project.everything()["services"].values()
    profiles = sorted({p for spec in everything for p in spec.get("profiles") or []})
    return dm.default_cleanup(profiles)


@pytest.fixture(scope="session")
async def docker_manager(
    anyio_backend: str,
    pytestconfig: pytest.Config,
    k2_e2e: E2ESession,
    compose_project: ComposeProject,
    docker_compose_command: str,
    docker_compose_file: list[str],
    docker_compose_project_name: str,
    docker_setup: list[str],
    docker_cleanup: list[str],
) -> AsyncIterator[dm.E2EDockerManager]:
    """The run's stack manager; tears everything down at the end, even after a failed up."""
    reporter: Any = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture: Any = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        """Progress to the terminal now, not into the test's captured output."""
        if reporter is None or k2_e2e.worker is not None:
            return
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line(line)

    for verdict in sweep(compose_project.docker, k2_e2e.identity.host):
        if verdict.remove:
            say(f"k2-e2e: removed leftover stack {verdict.project} ({verdict.reason})")
            shutil.rmtree(
                compose_project.root / ".build" / "e2e" / "runs" / verdict.project,
                ignore_errors=True,
            )
    for name in remove_unused(PROJECT_PREFIX):
        say(f"k2-e2e: removed unused CPU-limit cgroup {name}")
    executor = DockerComposeExecutor(
        docker_compose_command, docker_compose_file, docker_compose_project_name
    )
    manager = dm.E2EDockerManager(
        compose_project,
        executor,
        docker_setup,
        docker_cleanup,
        keep=k2_e2e.options.keep,
        say=say,
    )
    if k2_e2e.options.reuse and reuse.all_ready(compose_project):
        manager.adopt(k2_e2e.options.profile)
        say(f"k2-e2e: reusing running stack {compose_project.name}")
    k2_e2e.manager = manager
    # Sampling starts once a profile is up: `docker stats` costs the engine CPU that the
    # JVMs need while they start (measured: it slowed start-up on two cores).
    k2_e2e.sampler = StatsSampler(compose_project.docker)
    manager.on_ready = k2_e2e.sampler.start
    try:
        yield manager
    finally:
        k2_e2e.sampler.stop()
        await manager.stop_stack()
        k2_e2e.release_cpu_limit()
        if not manager.keep:
            shutil.rmtree(compose_project.env_file.parent, ignore_errors=True)


@pytest.fixture(scope="session")
async def minimal_stack(
    anyio_backend: str, k2_e2e: E2ESession, docker_manager: dm.E2EDockerManager
) -> dict[str, str]:
    """Kafka, registry, MinIO, PostgreSQL, Iceberg REST (or more, under --e2e-profile full)."""
    if k2_e2e.options.profile == "full":
        return await docker_manager.start_full_stack()
    return await docker_manager.start_minimal_stack()


@pytest.fixture(scope="session")
async def full_stack(anyio_backend: str, docker_manager: dm.E2EDockerManager) -> dict[str, str]:
    """The minimal stack plus k2-query-api and consumer-crypto, grown in place."""
    return await docker_manager.start_full_stack()


@pytest.fixture
async def api_client(
    anyio_backend: str, full_stack: dict[str, str], docker_manager: dm.E2EDockerManager
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
def endpoints(full_stack: dict[str, str], docker_manager: dm.E2EDockerManager) -> Endpoints:
    """Where the running full stack's services are, from the host (fresh after restarts)."""
    return Endpoints.of(docker_manager.project)


@pytest.fixture
def api(endpoints: Endpoints, docker_manager: dm.E2EDockerManager) -> Iterator[httpx.Client]:
    """A blocking API client with the key, for polling from threads and plain tests."""
    with httpx.Client(
        base_url=endpoints.api_url,
        headers={"X-API-Key": _api_key(docker_manager.project)},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture(scope="session")
def e2e_cpus(k2_e2e: E2ESession) -> float | None:
    """The CPU limit the run's stack and tests share (--e2e-cpus), None when unlimited."""
    return k2_e2e.options.cpus


@pytest.fixture(scope="session")
def feed_pool(
    full_stack: dict[str, str], docker_manager: dm.E2EDockerManager
) -> Iterator[FeedPool]:
    """The feed's worker processes, connected once for the session (see k2.feed.pool)."""
    endpoints = Endpoints.of(docker_manager.project)
    with FeedPool(endpoints.bootstrap, endpoints.registry_url) as pool:
        yield pool


@pytest.fixture(scope="session")
def performance_monitor(k2_e2e: E2ESession) -> PerformanceMonitor:
    """The session's measured runs: reported in the terminal summary and the artifacts."""
    return k2_e2e.performance


@pytest.fixture(autouse=True)
def _stack_still_ready(request: pytest.FixtureRequest, k2_e2e: E2ESession) -> None:
    """Before each stack test, notice a service that an earlier test restarted or broke."""
    manager = k2_e2e.manager
    if manager is None or manager.active_profile is None:
        return
    if {"minimal_stack", "full_stack", "api_client"} & set(request.fixturenames):
        manager.ensure_still_ready()
