"""The plugin's fixtures: pytest-docker's five describe the project, the rest run it.

Every step is a fixture a nearer conftest can override, and overriding it changes that step
for everything after it: the project (`stack_project`) is built from `docker_compose_command`,
`docker_compose_file` and `docker_compose_project_name`, and the manager runs exactly
`docker_setup` and `docker_cleanup`. pytest-docker's `docker_services` returns the running
stack, so its `port_for` works here too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import pytest

from e2e_stack import preflight, reuse
from e2e_stack.cpu_limit import CpuLimit, CpuLimitError, held, remove_unused
from e2e_stack.engine import Engine
from e2e_stack.faults import Faults
from e2e_stack.manager import (
    DEFAULT_CLEANUP,
    DEFAULT_SETUP,
    StackManager,
    growth_order,
    profiles_of,
    reachable_profiles,
)
from e2e_stack.preflight import PreflightError
from e2e_stack.project import (
    CommandError,
    ComposeProject,
    compose_command,
    labels_overlay,
    overlay_labels,
    write_env_file,
    write_overlay,
)
from e2e_stack.readiness import ContainerState
from e2e_stack.redact import Redactor, secrets_in
from e2e_stack.settings import Settings
from e2e_stack.signals import interrupt_on_sigterm
from e2e_stack.state import FAULTS, RunState, run_state, uses_stack
from e2e_stack.stats import StatsSampler
from e2e_stack.sweep import sweep
from e2e_stack.target import Target

PREFLIGHT_EXIT = 4


def _stop(message: str) -> NoReturn:
    """End the session with one line: nothing has started yet."""
    pytest.exit(f"e2e-stack preflight: {message}", returncode=PREFLIGHT_EXIT)


@pytest.fixture(scope="session")
def stack_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved --e2e-* settings."""
    return run_state(pytestconfig).settings


@pytest.fixture(scope="session")
def stack_state(pytestconfig: pytest.Config) -> RunState:
    """This process's run: settings, identity, xdist worker."""
    return run_state(pytestconfig)


@pytest.fixture(scope="session")
def stack_target(stack_state: RunState) -> Target | None:
    """The deployment of --e2e-target, checked reachable once; None when this run has a stack.

    A fixture that gives tests a way to the services asks this one first: with a target,
    it hands out the target's addresses and never touches `stack_manager`.
    """
    target = stack_state.target
    if target is not None:
        down = target.unreachable()
        if down:
            _stop(f"--e2e-target {target.path}: not reachable from here: " + "; ".join(down))
    return target


def _refuse_with_target(state: RunState, what: str) -> None:
    """Nothing of an external target's may be started, stopped or removed: fail instead."""
    if state.target is not None:
        pytest.fail(
            f"{what} is not available with --e2e-target {state.target.path}: it controls "
            "containers; a test that needs it must not be marked operational",
            pytrace=False,
        )


# -- pytest-docker's fixtures, with this plugin's defaults -----------------------------------


@pytest.fixture(scope="session")
def docker_compose_file(stack_settings: Settings) -> list[str]:
    """The compose files (setting e2e_compose_files), base first."""
    return [str(path) for path in stack_settings.compose_files]


@pytest.fixture(scope="session")
def stack_publish_address(stack_settings: Settings) -> str:
    """The address the stack's ports are published on and every client connects to.

    Loopback for a local engine; for a remote one, the address the user names (see
    `preflight.publish_address`). Override it to decide otherwise.
    """
    named = stack_settings.publish_address
    flag = f"--e2e-publish-address (or {stack_settings.env_name('PUBLISH_ADDRESS')})"
    try:
        return preflight.publish_address(Engine().endpoint(), named, flag)
    except PreflightError as exc:
        _stop(str(exc))


@pytest.fixture(scope="session")
def stack_preflight(
    pytestconfig: pytest.Config,
    stack_settings: Settings,
    docker_compose_file: list[str],
    stack_publish_address: str,
) -> dict[str, Any]:
    """Every check before `up`; the model of every profile. pytest stops here if one fails."""
    _refuse_with_target(run_state(pytestconfig), "the stack (stack_preflight)")
    probe = ComposeProject.from_fixtures(
        "docker compose",
        docker_compose_file,
        f"{stack_settings.project_prefix}-preflight",
        pytestconfig.rootpath,
    )

    def growing_to(everything: dict[str, Any]) -> tuple[str, ...]:
        """The profiles this session may grow to: their images must all be there."""
        try:
            return reachable_profiles(everything, stack_settings.profiles, stack_settings.profile)
        except ValueError as exc:
            raise PreflightError(str(exc)) from exc

    try:
        everything = preflight.run_all(
            probe,
            growing_to,
            stack_settings.engine_hint,
            stack_settings.images_hint,
            os.environ,
            stack_publish_address,
        )
    except PreflightError as exc:
        _stop(str(exc))
    return everything


@pytest.fixture(scope="session")
def docker_compose_project_name(
    stack_state: RunState, stack_settings: Settings, stack_preflight: dict[str, Any]
) -> str:
    """Unique per run and xdist worker; stable per config hash under --e2e-reuse."""
    prefix = stack_settings.project_prefix
    if stack_settings.reuse:
        digest = reuse.config_hash(stack_preflight, Engine())
        return reuse.reuse_project_name(prefix, digest, stack_state.worker)
    return stack_state.identity.project_name(prefix, stack_state.worker)


@pytest.fixture(scope="session")
def stack_run_dir(
    pytestconfig: pytest.Config,
    stack_state: RunState,
    stack_settings: Settings,
    docker_compose_project_name: str,
) -> Iterator[Path]:
    """Where the run's generated files go: its variables file and labels overlay.

    Removed at the end unless the stack is kept (a reused stack keeps its variables).
    """
    directory = stack_state.run_dir(pytestconfig.rootpath, docker_compose_project_name)
    directory.mkdir(parents=True, exist_ok=True)
    yield directory
    if not stack_settings.keep:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_env_file(
    pytestconfig: pytest.Config,
    stack_settings: Settings,
    docker_compose_project_name: str,
    stack_run_dir: Path,
    stack_publish_address: str,
) -> Path:
    """The run's compose variables file, from the pytest_e2e_stack_environment hook."""
    variables: dict[str, str] = {}
    for found in pytestconfig.hook.pytest_e2e_stack_environment(
        settings=stack_settings,
        project_name=docker_compose_project_name,
        publish_address=stack_publish_address,
    ):
        variables |= found or {}
    return write_env_file(stack_run_dir / "stack.env", variables)


@pytest.fixture(scope="session")
def docker_compose_command(stack_env_file: Path) -> str:
    """Compose v2 with the run's variables file."""
    return compose_command(stack_env_file)


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    """Start detached; the manager waits, in parallel and with logs. Profiles come as --profile."""
    return list(DEFAULT_SETUP)


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    """Remove containers, networks and volumes of every profile."""
    return list(DEFAULT_CLEANUP)


# -- running it ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack_cpu_limit(stack_state: RunState, stack_settings: Settings) -> Iterator[str | None]:
    """The --e2e-cpus cgroup every container and this process share; None when unlimited."""
    if stack_settings.cpus is None:
        yield None
        return
    limit = CpuLimit(stack_settings.cpus, stack_settings.project_prefix)
    engine = Engine()
    try:
        limit.check(engine.cgroup_driver(), engine.is_local())
    except CpuLimitError as exc:
        _stop(str(exc))
    # This process (and the processes it starts) shares the limit with the stack.
    with held(limit, os.getpid()):
        yield limit.cgroup_parent


@pytest.fixture(scope="session")
def stack_project(
    pytestconfig: pytest.Config,
    stack_state: RunState,
    stack_settings: Settings,
    stack_preflight: dict[str, Any],
    stack_cpu_limit: str | None,
    stack_run_dir: Path,
    docker_compose_command: str,
    docker_compose_file: list[str],
    docker_compose_project_name: str,
    stack_publish_address: str,
) -> ComposeProject:
    """The one carrier: what pytest-docker's fixtures say, plus the run's labels overlay."""
    root = pytestconfig.rootpath
    try:
        project = ComposeProject.from_fixtures(
            docker_compose_command,
            docker_compose_file,
            docker_compose_project_name,
            root,
            host=stack_publish_address,
            all_profiles_model=stack_preflight,
        )
    except CommandError as exc:
        _stop(str(exc))
    keys = stack_state.keys
    labels = stack_state.identity.labels(keys)
    if stack_settings.reuse:
        made_by = overlay_labels(stack_run_dir / "labels.json")
        labels = made_by if made_by and keys.run_id in made_by else labels
    if stack_settings.keep:
        labels[keys.keep] = "true"
    overlay = write_overlay(
        stack_run_dir / "labels.json",
        labels_overlay(stack_preflight, labels, stack_cpu_limit),
    )
    # The model holds every secret as compose resolved it, from the environment too.
    stack_state.redactor = Redactor(secrets_in(stack_preflight))
    return project.with_overlay(overlay)


@pytest.fixture(scope="session")
def stack_manager(
    pytestconfig: pytest.Config,
    stack_state: RunState,
    stack_settings: Settings,
    stack_project: ComposeProject,
    stack_preflight: dict[str, Any],
    stack_run_dir: Path,
    docker_setup: str | list[str],
    docker_cleanup: str | list[str],
) -> Iterator[StackManager]:
    """The session's stack: sweeps dead runs' stacks first, tears its own down at the end."""
    _refuse_with_target(stack_state, "stack_manager")
    reporter: Any = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture: Any = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        """Progress to the terminal now, not into the test's captured output."""
        if reporter is None or stack_state.worker is not None:
            return
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            reporter.write_line(line)

    interrupt_on_sigterm()  # A session without xdist (workers installed it at configure).
    root = pytestconfig.rootpath
    order = growth_order(stack_preflight, stack_settings.profiles)
    start = stack_settings.profile or order[0]
    # The starting profile's model (and, under --e2e-reuse, whether its stack is up already)
    # is resolved while the sweep lists the engine: both are CLI calls that mostly wait.
    project = stack_project.with_profiles(profiles_of(start))
    with ThreadPoolExecutor(max_workers=1) as pool:
        swept = pool.submit(
            sweep,
            stack_project.engine,
            stack_state.identity.host,
            stack_settings.project_prefix,
            stack_state.keys,
        )
        reusable: dict[str, ContainerState] | None = None
        if stack_settings.reuse:
            reusable = reuse.ready_states(project)
        else:
            _ = project.config  # cached on the project for `up` and the waits
        verdicts = swept.result()
    for verdict in verdicts:
        if verdict.remove:
            say(f"e2e-stack: removed leftover stack {verdict.project} ({verdict.reason})")
            shutil.rmtree(stack_state.run_dir(root, verdict.project), ignore_errors=True)
    for name in remove_unused(stack_settings.project_prefix):
        say(f"e2e-stack: removed unused CPU-limit cgroup {name}")
    manager = StackManager(
        project,
        docker_setup,
        docker_cleanup,
        order,
        keep=stack_settings.keep,
        say=say,
        run_dir=stack_run_dir,
    )
    if reusable is not None:
        manager.adopt(start, reusable)
        say(f"e2e-stack: reusing running stack {stack_project.name}")
    stack_state.manager = manager
    # Sampling starts once a profile is up: `docker stats` costs the engine CPU that the
    # services need while they start (measured: it slowed start-up on two cores).
    stack_state.sampler = sampler = StatsSampler(stack_project.engine)
    manager.on_ready = sampler.start
    try:
        yield manager
    finally:
        sampler.stop()
        manager.stop_now()


@pytest.fixture(scope="session")
def running_stack(stack_manager: StackManager, stack_settings: Settings) -> dict[str, str]:
    """The stack up and ready in its starting profile: service -> 'host:port'."""
    return stack_manager.start_now(stack_settings.profile)


class _ComposeCaller:
    """What pytest-docker's `Services` calls: `execute(subcommand)` on the running project."""

    def __init__(self, manager: StackManager) -> None:
        self._manager = manager

    def execute(self, subcommand: str, **_: Any) -> bytes:
        return self._manager.project.engine.compose(subcommand).encode()


@pytest.fixture(scope="session")
def docker_services(stack_manager: StackManager, running_stack: dict[str, str]) -> Any:
    """pytest-docker's `Services` over the running stack (`port_for`, `wait_until_responsive`)."""
    try:
        from pytest_docker import Services
    except ImportError as exc:
        raise RuntimeError(
            "docker_services needs pytest-docker: pip install pytest-docker"
        ) from exc
    return Services(_ComposeCaller(stack_manager))


@pytest.fixture
def stack_faults(
    request: pytest.FixtureRequest,
    stack_state: RunState,
    stack_manager: StackManager,
    running_stack: dict[str, str],
) -> Iterator[Faults]:
    """Break services of the running stack (kill, stop, pause, cut, restart), always restored.

    What was done and when goes into the test's failure bundle and the end-of-run summary.
    """
    faults = Faults(stack_manager)
    request.node.stash[FAULTS] = faults
    yield faults
    stack_state.findings.faults += faults.rows(request.node.nodeid)


@pytest.fixture(autouse=True)
def _stack_still_ready(request: pytest.FixtureRequest) -> Iterator[None]:
    """Before each stack test, notice a service that an earlier test restarted or broke.

    Right after the stack was started or adopted no test has run yet: nothing to notice.
    """
    manager = run_state(request.config).manager
    if (
        manager is not None
        and manager.active_profile is not None
        and not manager.ready_since_last_test
        and uses_stack(request.fixturenames)
    ):
        manager.ensure_still_ready()
    yield
    if manager is not None:
        manager.ready_since_last_test = False
