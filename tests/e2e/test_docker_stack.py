"""Orchestration: the stack the fixtures start is the one the compose files describe, and works.

Also the plugin's failure paths, each on a throwaway project so the session's stack is never
disturbed (a service that never becomes healthy, an invalid compose file, a taken port), the
carrier honouring overridden pytest-docker fixtures, and a second compose project that is not
K2 running through the plugin alone. Expectations come from outside the plugin: the compose
CLI as a user would call it, the engine's own inspect, sockets.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from confluent_kafka.admin import AdminClient

from e2e_stack import Engine, StackUnhealthy
from e2e_stack.asking import askable, exec_asks
from e2e_stack.cpu_limit import CpuLimit, CpuLimitError
from e2e_stack.cpu_meter import process_cpu_seconds
from e2e_stack.faults import Faults
from e2e_stack.headstart import Headstart
from e2e_stack.preflight import PreflightError, run_all
from e2e_stack.project import overlay_labels
from e2e_stack.readiness import strategies
from e2e_stack.state import RUNS_DIR, RunState
from e2e_stack.sweep import leftovers
from e2e_stack.target import describe
from e2e_stack.waiting import wait_until_ready
from tests.e2e.k2_plugin import KAFKA_PORT_VARIABLE
from tests.e2e.utils.docker_manager import E2EDockerManager
from tests.e2e.utils.polling import poll_until
from tests.e2e.utils.stacks import throwaway_stack

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

# What the step document defines the minimal profile to be: the five infrastructure services
# and the one-shot that creates the warehouse bucket.
MINIMAL_SERVICES = {"kafka", "schema-registry", "minio", "minio-init", "postgres", "iceberg-rest"}
NOTHING: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "object-store"
NESTED_TIMEOUT_S = 600
NESTED_TEARDOWN_S = 120
"""How long an interrupted nested session gets to tear its stack down before SIGKILL."""


def _plain_compose(root: Path, *args: str) -> str:
    """The compose CLI as a user calls it on the repository's files (not the plugin's path)."""
    files = ["-f", "docker-compose.v1.yml", "-f", "docker-compose.e2e.override.yml"]
    proc = subprocess.run(
        ["docker", "compose", *files, *args], cwd=root, capture_output=True, text=True, check=True
    )
    return proc.stdout


def _containers_of(project: str) -> dict[str, Any]:
    """Service -> container of a compose project, straight from the engine."""
    docker = Engine().docker  # python-on-whales, loaded on first use
    found = docker.container.list(
        all=True, filters=[("label", f"com.docker.compose.project={project}")]
    )
    return {(c.config.labels or {})["com.docker.compose.service"]: c for c in found}


@dataclass(frozen=True)
class _Session:
    """Another pytest session running in the background, and its output so far."""

    proc: subprocess.Popen[str]
    out: IO[str]

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read()


@contextlib.contextmanager
def _pytest_session(cwd: Path, env: Mapping[str, str], *args: str) -> Iterator[_Session]:
    """Start another pytest session; if the block fails or is interrupted, stop it cleanly.

    Interrupted (Ctrl-C, kill -TERM, an xdist worker being shut down) or failed, the nested
    session gets SIGTERM, not the SIGKILL `subprocess.run` would send, so it tears its own
    stack down. Its output goes to a file, not a pipe: a pipe would break when this process
    dies first, and the nested session would fail writing its teardown's progress, before
    `down`.
    """
    with (
        tempfile.TemporaryFile(mode="w+") as out,
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc,
    ):
        try:
            yield _Session(proc, out)
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=NESTED_TEARDOWN_S)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise


def _nested_pytest(cwd: Path, env: Mapping[str, str], *args: str) -> tuple[int, str]:
    """Run another pytest session to its end; its exit code and whole output.

    The wait has a timeout so that an interrupt reaches it (an xdist worker is interrupted
    from another thread, which a wait without one would not notice).
    """
    with _pytest_session(cwd, env, *args) as session:
        code = session.proc.wait(timeout=NESTED_TIMEOUT_S)
        return code, session.output()


ENGINE_AGREES_S = 15.0
"""How long the engine's healthchecks may lag the layer's own asks of them."""


# -- the session's stack -----------------------------------------------------------------


def test_minimal_profile_selects_exactly_the_infrastructure(
    pytestconfig: pytest.Config, minimal_stack: dict[str, str], docker_manager: E2EDockerManager
) -> None:
    root = pytestconfig.rootpath
    assert set(_plain_compose(root, "--profile", "minimal", "config", "--services").split()) == (
        MINIMAL_SERVICES
    )
    active = docker_manager.stack.active_profile
    assert active is not None
    wanted = set(_plain_compose(root, "--profile", active, "config", "--services").split())
    assert set(_containers_of(docker_manager.project.name)) == wanted


def test_every_service_is_ready_and_reachable_on_the_port_compose_reports(
    minimal_stack: dict[str, str],
    docker_manager: E2EDockerManager,
    docker_services: Any,
    stack_publish_address: str,
) -> None:
    # The layer may call a service ready from its own ask of the healthcheck (before the
    # engine's next probe); the engine must agree by its next probe (2 s interval, 3 s
    # timeout; the deadline leaves room for a machine twice as slow).
    def not_ready() -> dict[str, tuple[str, int]]:
        states = {
            name: (c.state.health.status if c.state.health else c.state.status, c.state.exit_code)
            for name, c in _containers_of(docker_manager.project.name).items()
        }
        return {n: s for n, s in states.items() if s[0] != "healthy" and s != ("exited", 0)}

    poll_until(not_ready, lambda left: not left, ENGINE_AGREES_S, "the engine's healthchecks")
    containers = _containers_of(docker_manager.project.name)
    published = {
        (name, int(port.split("/")[0]))
        for name, c in containers.items()
        for port, bindings in (c.network_settings.ports or {}).items()
        if bindings
    }
    assert {name for name, _ in published} == set(minimal_stack)
    for service, container_port in published:
        # pytest-docker's own port_for answers on the plugin's stack (`docker compose port`).
        host_port = docker_services.port_for(service, container_port)
        assert minimal_stack[service] == f"{stack_publish_address}:{host_port}"
        with socket.create_connection((stack_publish_address, host_port), timeout=5):
            pass


def test_kafka_advertises_the_address_and_port_the_run_environment_hook_chose(
    minimal_stack: dict[str, str], stack_env_file: Path, stack_publish_address: str
) -> None:
    """K2's pytest_e2e_stack_environment hook picks Kafka's host port before `up`.

    The broker itself, asked for its metadata, names the publish address and that port: a
    client anywhere the address is reachable connects back to it, not to the engine's loopback.
    """
    variables = dict(line.split("=", 1) for line in stack_env_file.read_text().split())
    chosen = os.environ.get(KAFKA_PORT_VARIABLE) or variables[KAFKA_PORT_VARIABLE]
    assert minimal_stack["kafka"] == f"{stack_publish_address}:{chosen}"
    metadata = AdminClient({"bootstrap.servers": minimal_stack["kafka"]}).list_topics(timeout=20)
    advertised = {f"{broker.host}:{broker.port}" for broker in metadata.brokers.values()}
    assert advertised == {minimal_stack["kafka"]}


def test_every_container_runs_under_the_cpu_limit_exactly_when_one_is_set(
    minimal_stack: dict[str, str], docker_manager: E2EDockerManager, stack_cpu_limit: str | None
) -> None:
    """--e2e-cpus reaches the engine: each container's cgroup parent is the limit's, or none."""
    parents = {  # python-on-whales reads an unset parent as Path(".")
        service: str(container.host_config.cgroup_parent or ".").removeprefix(".") or None
        for service, container in _containers_of(docker_manager.project.name).items()
    }
    assert parents == dict.fromkeys(parents, stack_cpu_limit)


def test_published_ports_are_bound_to_the_publish_address_only(
    minimal_stack: dict[str, str], docker_manager: E2EDockerManager, stack_publish_address: str
) -> None:
    """Loopback for a local engine: nothing of the stack is reachable from the network."""
    bindings = docker_manager.project.engine.port_bindings()
    assert bindings
    for container, address, _port in bindings:
        assert address == stack_publish_address, (container, address)


async def test_service_logs_are_retrievable(
    minimal_stack: dict[str, str], docker_manager: E2EDockerManager
) -> None:
    # The whole log: earlier tests may have pushed the start-up line out of any short tail.
    logs = await docker_manager.get_service_logs("kafka", lines=1_000_000)
    assert "Kafka Server started" in logs or "started (kafka.server" in logs, logs[-2000:]
    tail = await docker_manager.get_service_logs("kafka", lines=5)
    assert 0 < len(tail.strip().splitlines()) <= 5


async def test_restarted_service_becomes_ready_and_fixtures_notice(
    minimal_stack: dict[str, str],
    docker_manager: E2EDockerManager,
    docker_services: Any,
    stack_publish_address: str,
) -> None:
    name = docker_manager.project.name
    before = _containers_of(name)["minio"].state.started_at
    docker_manager.project.engine.restart("minio")
    await docker_manager.wait_for_health("minio", timeout=60)
    container = _containers_of(name)["minio"]
    assert container.state.started_at != before, "minio was not restarted"
    assert container.state.health is not None
    assert container.state.health.status == "healthy"
    # The endpoint map follows the port the restarted container got, as compose reports it.
    reported = subprocess.run(
        ["docker", "port", container.name, "9000/tcp"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert docker_manager.running_services["minio"] == reported
    with socket.create_connection((stack_publish_address, int(reported.rsplit(":", 1)[1])), 5):
        pass


def test_faults_break_a_service_and_always_put_it_back(
    minimal_stack: dict[str, str], docker_manager: E2EDockerManager, stack_faults: Faults
) -> None:
    """Pause, cut and kill seen by the engine itself; each time the stack is ready after."""
    name = docker_manager.project.name

    def minio() -> Any:
        return _containers_of(name)["minio"]

    with stack_faults.paused("minio"):
        assert minio().state.status == "paused"
    assert minio().state.status == "running"
    with stack_faults.disconnected("minio"):
        assert not minio().network_settings.networks
    assert minio().network_settings.networks
    # Reconnected under its service name: a neighbour resolves and reaches it again.
    probe = ["curl", "-fsS", "-o", "/dev/null", "http://minio:9000/minio/health/ready"]
    docker_manager.project.engine.execute("iceberg-rest", probe)
    seen_inside: list[str] = []

    def fail_inside_a_kill() -> None:
        with stack_faults.killed("minio"):
            seen_inside.append(minio().state.status)
            raise RuntimeError("a test failing inside the fault")

    with pytest.raises(RuntimeError, match="inside"):
        fail_inside_a_kill()
    assert seen_inside == ["exited"]
    health = minio().state.health
    assert health is not None
    assert health.status == "healthy"
    assert [record.kind for record in stack_faults.records] == ["pause", "disconnect", "kill"]
    assert all(record.ready_again is not None for record in stack_faults.records)


TARGET_ENV = [
    ("minio", "MINIO_ROOT_USER"),
    ("minio", "MINIO_ROOT_PASSWORD"),
    ("iceberg-rest", "AWS_REGION"),
    ("k2-query-api", "K2_API_KEY"),
]
"""The values the tests read from a deployment besides its addresses (see hops.Endpoints)."""


def _container_states(project: str) -> dict[str, tuple[str, str, str, int]]:
    """Service -> (container id, started at, status, restarts): changes if anything touched it."""
    return {
        name: (c.id, str(c.state.started_at), str(c.state.status), c.restart_count or 0)
        for name, c in _containers_of(project).items()
    }


def test_a_run_against_an_external_target_tests_it_and_leaves_it_untouched(
    pytestconfig: pytest.Config,
    full_stack: dict[str, str],
    docker_manager: E2EDockerManager,
    stack_state: RunState,
    tmp_path: Path,
) -> None:
    """This session's full stack stands in for a K2 started by hand (compose, or a deployment).

    The nested run gets only a target file: its operational tests must pass against the
    stack, its tests that control containers must be deselected with the reason, and
    afterwards every container is the one it was, started when it was, and nothing carries
    the nested run's labels.
    """
    project = docker_manager.project.name
    target = tmp_path / "target.toml"
    target.write_text(describe(project, TARGET_ENV))
    before = _container_states(project)
    variables = {stack_state.settings.env_name(n): "" for n in ("ENGINES", "KEEP", "REUSE")}
    with _pytest_session(
        pytestconfig.rootpath,
        variables,
        "-m",
        "e2e",
        f"--e2e-target={target}",
        "tests/e2e/test_complete_pipeline.py",
    ) as session:
        code = session.proc.wait(timeout=NESTED_TIMEOUT_S)
        output = session.output()
        nested_pid = session.proc.pid
    assert code == 0, output[-4000:]
    summary = output[output.index("e2e target") :]
    control = summary[summary.index("needs control of the stack's containers") :]
    for name in (
        "test_consumer_killed_mid_stream_loses_and_duplicates_nothing",
        "test_stopped_consumer_fails_the_wait_naming_the_hop_then_recovers_exactly",
    ):
        assert f"test_complete_pipeline.py::{name}" in control, summary
    assert " passed" in output.splitlines()[-1], output[-2000:]
    assert _container_states(project) == before
    docker = Engine().docker  # python-on-whales, loaded on first use
    label = f"{stack_state.keys.pid}={nested_pid}"
    assert not docker.container.list(all=True, filters=[("label", label)])
    assert not docker.network.list(filters=[("label", label)])
    assert not docker.volume.list(filters=[("label", label)])


REUSED_TEST = (
    "tests/e2e/test_docker_stack.py::test_minimal_profile_selects_exactly_the_infrastructure"
)


def test_reuse_keeps_the_stack_and_a_second_run_adopts_it_untouched(
    pytestconfig: pytest.Config, stack_state: RunState, tmp_path: Path
) -> None:
    """--e2e-reuse: a first run starts the stack and leaves it up; the next one adopts it.

    As a developer iterates: the second run (same files, variables and images) runs its test
    on those very containers, none started, stopped or restarted; the remove command it
    prints then leaves nothing behind, its run directory included.

    The nested runs get a project prefix of their own, so a developer's reused stack on this
    engine is never adopted, nor removed at the end; they run without the slow mode's CPU
    limit, whose cgroup a kept stack would outlive.
    """
    settings = stack_state.settings
    prefix = f"k2reuse{os.getpid()}"
    variables = {
        "CI": "",
        settings.env_name("GATE"): "",
        settings.env_name("PROFILE"): "minimal",
        **{settings.env_name(n): "" for n in ("CPUS", "ENGINES", "KEEP", "TARGET")},
    }
    args = (
        "-m",
        "e2e",
        "--e2e-reuse",
        f"--e2e-project-prefix={prefix}",
        f"--e2e-artifacts={tmp_path / 'artifacts'}",
        REUSED_TEST,
    )
    root = pytestconfig.rootpath
    engine = Engine()
    try:
        code, first = _nested_pytest(root, variables, *args)
        assert code == 0, first[-4000:]
        projects = {r.project for r in engine.resources() if r.project.startswith(prefix)}
        assert len(projects) == 1, f"expected one kept stack, found {sorted(projects)}"
        [project] = projects
        assert f"stack {project} left running" in first, first[-2000:]
        before = _container_states(project)
        assert set(before) == MINIMAL_SERVICES, before

        code, second = _nested_pytest(root, variables, *args)
        assert code == 0, second[-4000:]
        assert f"reusing running stack {project}" in second, second[-2000:]
        assert "starting profile" not in second, second[-2000:]
        assert _container_states(project) == before, "the second run touched the containers"
        # What the next `up` would apply (another profile, say) must be what the containers
        # carry, or compose recreates the whole reused stack.
        written = overlay_labels(stack_state.run_dir(root, project) / "labels.json") or {}
        carried = {
            name: {key: c.config.labels.get(key) for key in written}
            for name, c in _containers_of(project).items()
        }
        assert written, "the kept stack's labels overlay is gone"
        assert all(labels == written for labels in carried.values()), (
            f"the second run relabelled the reused stack: {written} vs {carried}"
        )

        # The remove command the run printed takes the stack and its run directory (whose
        # labels and variables a later reuse would otherwise adopt for a new stack).
        [remove] = [
            line.split("remove:", 1)[1] for line in second.splitlines() if "remove:" in line
        ]
        done = subprocess.run(["bash", "-c", remove], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert not [r for r in engine.resources() if r.project == project], remove
        assert not stack_state.run_dir(root, project).exists(), remove
    finally:
        ours = [r for r in engine.resources() if r.project.startswith(prefix)]
        engine.remove(ours)
        for directory in (root / RUNS_DIR).glob(f"{prefix}-*"):
            shutil.rmtree(directory, ignore_errors=True)
    assert not [r for r in engine.resources() if r.project.startswith(prefix)]


def test_teardown_leaves_nothing(
    pytestconfig: pytest.Config, stack_state: RunState, tmp_path: Path, stack_publish_address: str
) -> None:
    manager = throwaway_stack(pytestconfig.rootpath, stack_state, tmp_path, stack_publish_address)
    manager.project.with_profiles(("minimal",)).engine.compose("up -d --wait minio postgres")
    assert leftovers(Engine(), manager.project.name)["volumes"], "the stack made no volume"
    manager.stop_now()
    assert leftovers(Engine(), manager.project.name) == NOTHING


SLOW_PROBES_S = 120
"""An engine healthcheck interval far longer than the two services take to be ready."""


def test_a_dependent_starts_and_is_ready_long_before_the_engines_first_probe(
    pytestconfig: pytest.Config, stack_state: RunState, tmp_path: Path, stack_publish_address: str
) -> None:
    """The headstart: postgres's own check exec'd, the registry started and asked over HTTP.

    With both healthchecks probed only every 120 s, compose would start the registry after
    120 s and `up --wait` would return after 240 s; here both are ready while the engine has
    not probed either once.
    """
    slow = {"interval": f"{SLOW_PROBES_S}s", "start_period": "0s"}
    overlay = {
        "services": {"postgres": {"healthcheck": slow}, "schema-registry": {"healthcheck": slow}}
    }
    manager = throwaway_stack(
        pytestconfig.rootpath, stack_state, tmp_path, stack_publish_address, overlay
    )
    project = manager.project.with_profiles(("minimal",))
    engine = project.engine
    try:
        engine.compose("create postgres schema-registry")
        began = time.monotonic()
        engine.start_created([engine.observe(["postgres"])["postgres"].container])
        model = project.config
        headstart = Headstart(
            model,
            askable(model, stack_publish_address),
            exec_asks(model, engine.check_in),
            engine.start_created,
        )
        chosen = strategies(model)
        report = wait_until_ready(
            engine,
            {name: chosen[name] for name in ("postgres", "schema-registry")},
            {"postgres": SLOW_PROBES_S / 2, "schema-registry": SLOW_PROBES_S / 2},
            headstart=headstart,
        )
        took = time.monotonic() - began
        states = engine.observe(["postgres", "schema-registry"])
    finally:
        manager.stop_now()
    assert took < SLOW_PROBES_S, "the engine may have probed: this run proves nothing"
    assert headstart.started == ["schema-registry"]
    assert report.ready_after_s["postgres"] < report.ready_after_s["schema-registry"]
    assert {s.health for s in states.values()} == {"starting"}, states
    assert leftovers(Engine(), manager.project.name) == NOTHING


# -- failure paths -------------------------------------------------------------------------


async def test_never_healthy_service_fails_setup_fast_with_its_logs(
    pytestconfig: pytest.Config, stack_state: RunState, tmp_path: Path, stack_publish_address: str
) -> None:
    broken = {
        "services": {
            "minio": {
                "healthcheck": {
                    "test": ["CMD-SHELL", "echo probe-says-no; exit 1"],
                    "interval": "1s",
                    "timeout": "2s",
                    "retries": 2,
                    "start_period": "0s",
                }
            }
        }
    }
    manager = throwaway_stack(
        pytestconfig.rootpath, stack_state, tmp_path, stack_publish_address, broken
    )
    try:
        with pytest.raises(StackUnhealthy) as failure:
            await manager.start("minimal")
    finally:
        await manager.stop()
    message = str(failure.value)
    assert failure.value.service == "minio"
    assert "unhealthy" in failure.value.reason, "must fail on the health verdict, not a timeout"
    assert "probe-says-no" in message, "the health-check output is missing"
    assert "log lines of" in message
    assert "API:" in message or "MinIO" in message, "minio's own log lines are missing"
    assert leftovers(Engine(), manager.project.name) == NOTHING


def test_invalid_compose_file_fails_preflight_before_any_container(
    pytestconfig: pytest.Config, stack_state: RunState, tmp_path: Path, stack_publish_address: str
) -> None:
    broken = {"services": {"kafka": {"ports": "not-a-list", "healthcheck": {"retries": "many"}}}}
    manager = throwaway_stack(
        pytestconfig.rootpath, stack_state, tmp_path, stack_publish_address, broken
    )
    with pytest.raises(PreflightError, match="the compose files are invalid"):
        run_all(manager.project, lambda _: (), "start it", "build them", {})
    assert leftovers(Engine(), manager.project.name)["containers"] == []


def test_taken_pinned_port_stops_the_session_with_one_line(
    pytestconfig: pytest.Config, tmp_path: Path, stack_publish_address: str
) -> None:
    with socket.socket() as holder:
        holder.bind((stack_publish_address, 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        code, output = _nested_pytest(
            pytestconfig.rootpath,
            {"K2_MINIO_PORT": str(port), "K2_E2E_ARTIFACTS": str(tmp_path)},
            "-m",
            "e2e",
            f"{__file__}::test_minimal_profile_selects_exactly_the_infrastructure",
        )
    assert code == 4, output[-3000:]
    assert f"pinned host port {port} (K2_MINIO_PORT) is already in use" in output, output[-3000:]
    assert "starting profile" not in output


DELIBERATE_FAILURE = """
def test_deliberately_fails(running_stack):
    assert running_stack == {}, "deliberate failure"
"""


def test_failing_test_carries_service_logs_in_report_and_artifacts(
    pytestconfig: pytest.Config,
    tmp_path: Path,
    minimal_stack: dict[str, str],
    docker_manager: E2EDockerManager,
) -> None:
    test_file = tmp_path / "test_deliberate.py"
    test_file.write_text(DELIBERATE_FAILURE)
    artifacts = tmp_path / "artifacts"
    root = pytestconfig.rootpath
    code, output = _nested_pytest(
        root,
        # Minimal even inside the gate (which runs full): the bundle is the point here.
        {"K2_E2E_ARTIFACTS": str(artifacts), "K2_E2E_PROFILE": "minimal", "PYTHONPATH": str(root)},
        "-p",
        "tests.e2e.k2_plugin",  # K2's hooks (Kafka's port): the root conftest is not above /tmp
        "-c",
        str(root / "pyproject.toml"),
        "--rootdir",
        str(root),
        "-o",
        "addopts=",
        str(test_file),
    )
    assert code == 1, output[-3000:]
    assert "deliberate failure" in output, output[-3000:]
    for section in ("e2e-stack ps", "e2e-stack health", "e2e-stack stats", "e2e-stack logs kafka"):
        assert section in output, f"report lacks {section!r}:\n{output[-3000:]}"
    [bundle] = (artifacts / "failures").iterdir()
    assert (bundle / "logs-kafka.log").read_text().strip()
    assert {"ps.log", "health.log", "stats.log", "README.txt"} <= {p.name for p in bundle.iterdir()}
    secret = docker_manager.project.service_env("postgres")["POSTGRES_PASSWORD"]
    assert all(secret not in p.read_text() for p in bundle.iterdir()), "a password leaked"


# -- the carrier and the plugin on their own -----------------------------------------------

OVERRIDING_CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def docker_compose_project_name():
    return "{name}"

@pytest.fixture(scope="session")
def docker_compose_file(stack_settings):
    return [*map(str, stack_settings.compose_files), "{overlay}"]
"""
OVERRIDDEN_TEST = """
from python_on_whales import docker

def test_runs_and_watches_the_overridden_project(running_stack, stack_manager):
    # What is watched: the carrier's name and model, and the endpoints the wait produced.
    assert stack_manager.project.name == "{name}"
    assert stack_manager.project.config["services"]["minio"]["environment"]["MARK"] == "{mark}"
    assert "minio" in running_stack
    # What runs: the engine's own view of the project under that name, with the extra file.
    [minio] = docker.container.list(filters=[
        ("label", "com.docker.compose.project={name}"),
        ("label", "com.docker.compose.service=minio"),
    ])
    assert "MARK={mark}" in minio.config.env
"""


def test_overridden_name_and_files_change_what_runs_and_what_is_watched(
    pytestconfig: pytest.Config, stack_state: RunState, tmp_path: Path
) -> None:
    root = pytestconfig.rootpath
    name = f"{stack_state.settings.project_prefix}-{stack_state.identity.run_id}-renamed"
    mark = uuid.uuid4().hex[:8]
    overlay = tmp_path / "mark.json"
    overlay.write_text(f'{{"services": {{"minio": {{"environment": {{"MARK": "{mark}"}}}}}}}}')
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(OVERRIDING_CONFTEST.format(name=name, overlay=overlay))
    (suite / "test_overridden.py").write_text(OVERRIDDEN_TEST.format(name=name, mark=mark))
    env = {"K2_E2E_ARTIFACTS": str(tmp_path / "artifacts"), "K2_E2E_PROFILE": "minimal"}
    args = ("-c", str(root / "pyproject.toml"), "--rootdir", str(root), "-o", "addopts=")
    code, output = _nested_pytest(root, env, *args, "-s", str(suite))
    assert code == 0, output[-3000:]
    assert f"starting profile 'minimal' of {name}" in output, output[-3000:]
    assert leftovers(Engine(), name) == NOTHING


HOLDING_SUITE_INI = """
[pytest]
e2e_compose_files = {compose}
e2e_project_prefix = sigterm
e2e_label_namespace = org.example.sigterm
e2e_env_prefix = SIGTERM_E2E
"""
HOLDING_SUITE_TEST = """
import pathlib, time

def test_holds_its_stack(running_stack, stack_manager, worker_id):
    pathlib.Path({marks!r}, worker_id).write_text(stack_manager.project.name)
    try:
        time.sleep(600)
    except KeyboardInterrupt as interrupt:  # what interrupted it: the signal, or xdist later
        pathlib.Path({marks!r}, "interrupted").mkdir(exist_ok=True)
        pathlib.Path({marks!r}, "interrupted", worker_id).write_text(repr(interrupt))
        raise
"""


def test_sigterm_of_a_parallel_run_removes_every_workers_stack(tmp_path: Path) -> None:
    """`kill -TERM` of an `-n 2` run (a cancelled CI job): both workers' stacks are gone after.

    The example's smallest profile (one MinIO) keeps it cheap; each worker holds its stack in
    a test that would run for ten minutes, so only the signal can end the run, and records
    what interrupted it.
    """
    marks = tmp_path / "marks"
    marks.mkdir()
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text(HOLDING_SUITE_INI.format(compose=EXAMPLE / "compose.yaml"))
    (suite / "test_hold.py").write_text(HOLDING_SUITE_TEST.format(marks=str(marks)))
    with _pytest_session(suite, {}, "-n", "2", "--dist", "each") as run:

        def holding() -> list[str]:
            if run.proc.poll() is not None:
                raise AssertionError(f"the run ended by itself:\n{run.output()[-3000:]}")
            return sorted(mark.read_text() for mark in marks.iterdir() if mark.is_file())

        names = poll_until(holding, lambda names: len(names) == 2, 180, "both workers' stacks")
        run.proc.send_signal(signal.SIGTERM)
        code = run.proc.wait(timeout=180)
        output = run.output()
    assert code != 0, output[-3000:]
    # The controller passed SIGTERM on at once (xdist alone interrupts a worker's test only
    # after asking it to stop, waiting five seconds, and with no signal in the interrupt).
    interrupts = sorted(mark.read_text() for mark in (marks / "interrupted").iterdir())
    by_signal = repr(KeyboardInterrupt(f"signal {int(signal.SIGTERM)}"))
    assert interrupts == [by_signal] * 2, output[-3000:]
    for name in names:
        assert leftovers(Engine(), name) == NOTHING, output[-3000:]


def test_a_second_compose_project_runs_through_the_plugin_alone() -> None:
    """examples/object-store: another project's own tests, with no K2 code, are green."""
    imports = [
        line
        for path in EXAMPLE.rglob("*.py")
        for line in path.read_text().splitlines()
        if line.startswith(("import ", "from ")) and ("k2" in line or "tests" in line)
    ]
    assert imports == [], imports
    code, output = _nested_pytest(EXAMPLE, {}, "-s")
    assert code == 0, output[-3000:]
    assert "3 passed" in output, output[-3000:]
    project = next(line.split()[-1] for line in output.splitlines() if "starting profile" in line)
    assert project.startswith("demoe2e-")
    assert leftovers(Engine(), project) == NOTHING


def test_cpu_limit_holds_a_busy_process_to_its_quota() -> None:
    """--e2e-cpus is real: the kernel gives a process in the limit's cgroup only its quota.

    A spinning child under a quarter core, measured over one second of wall time, gets about
    0.25 CPU-seconds (not the whole core it would take), and the kernel reports throttling.
    """
    limit = CpuLimit(0.25, f"k2e2e-selftest-{os.getpid()}")
    try:
        limit.check("cgroupfs", engine_is_local=True)
    except CpuLimitError as exc:
        pytest.skip(f"--e2e-cpus is not available here: {exc}")
    limit.create()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        limit.join(child.pid)
        began_cpu, began = process_cpu_seconds(child.pid), time.monotonic()
        time.sleep(1.0)  # the measurement window, not a wait for readiness
        ended_cpu = process_cpu_seconds(child.pid)
        assert began_cpu is not None, "the child is gone"
        assert ended_cpu is not None, "the child is gone"
        used = (ended_cpu - began_cpu) / (time.monotonic() - began)
        assert used <= 0.25 * 1.4, f"the child used {used:.2f} cores under a 0.25-core limit"
        stat = limit.stat()
        assert stat.get("nr_throttled", 0) > 0, f"the kernel never throttled the child: {stat}"
    finally:
        child.kill()
        child.wait()
        assert limit.remove(), f"cgroup {limit.name} still in use after the child exited"
