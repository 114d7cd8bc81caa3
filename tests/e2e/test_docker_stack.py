"""Orchestration: the stack the fixtures start is the one the compose files describe, and works.

Also the layer's failure paths, each on a throwaway project so the session's stack is never
disturbed: a service that never becomes healthy, an invalid compose file, a taken port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from pytest_docker.plugin import DockerComposeExecutor
from python_on_whales import DockerClient

from tests.e2e.plugin import E2ESession, e2e_session
from tests.e2e.utils import docker_manager as dm
from tests.e2e.utils.compose_project import ComposeProject
from tests.e2e.utils.cpu_limit import CpuLimit, CpuLimitError
from tests.e2e.utils.cpu_meter import process_cpu_seconds
from tests.e2e.utils.health_wait import StackUnhealthy, observe
from tests.e2e.utils.preflight import PreflightError
from tests.e2e.utils.readiness import Verdict, strategies
from tests.e2e.utils.sweep import leftovers

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

# What the issue defines the minimal profile to be: the five infrastructure services and the
# one-shot that creates the warehouse bucket.
MINIMAL_SERVICES = {"kafka", "schema-registry", "minio", "minio-init", "postgres", "iceberg-rest"}


def _project_resources(name: str) -> dict[str, list[str]]:
    return leftovers(DockerClient(), name)


def _nested_pytest(root: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run another pytest session of the E2E layer; its exit code and whole output."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "e2e", "-p", "no:cacheprovider", *args],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _throwaway(
    root: Path, k2_e2e: E2ESession, tmp_path: Path, overlay: Mapping[str, object] | None = None
) -> ComposeProject:
    """A project of this run (labelled, so the sweep covers it) with an optional overlay."""
    project = ComposeProject.create(
        root,
        f"{k2_e2e.identity.project_name()}-t{uuid.uuid4().hex[:4]}",
        ("minimal",),
        tmp_path,
        labels=k2_e2e.identity.labels(),
    )
    if overlay is None:
        return project
    path = tmp_path / "broken.override.json"
    path.write_text(json.dumps(overlay))
    return ComposeProject(
        project.root,
        project.name,
        project.profiles,
        project.env_file,
        (*project.extra_files, path),
        project.host,
    )


def _manager_for(project: ComposeProject, k2_e2e: E2ESession) -> dm.E2EDockerManager:
    command = f'docker compose --env-file "{project.env_file}"'
    executor = DockerComposeExecutor(command, [str(f) for f in project.compose_files], project.name)
    return dm.E2EDockerManager(
        project,
        executor,
        dm.default_setup(),
        dm.default_cleanup(["minimal", "full"]),
        keep=False,
    )


# -- the session's stack -----------------------------------------------------------------


def test_minimal_profile_selects_exactly_the_infrastructure(
    minimal_stack: dict[str, str], docker_manager: dm.E2EDockerManager
) -> None:
    minimal = docker_manager.project.with_profiles(("minimal",))
    assert set(minimal.config["services"]) == MINIMAL_SERVICES
    running = {
        (c.config.labels or {}).get("com.docker.compose.service")
        for c in docker_manager.project.docker.compose.ps(all=True)
    }
    assert running == set(docker_manager.project.config["services"])


def test_every_service_is_ready_and_reachable_on_its_discovered_port(
    minimal_stack: dict[str, str], docker_manager: dm.E2EDockerManager
) -> None:
    project = docker_manager.project
    chosen = strategies(project.config)
    states = observe(project.docker, sorted(chosen))
    verdicts = {name: chosen[name].judge(state)[0] for name, state in states.items()}
    assert all(v is Verdict.READY for v in verdicts.values()), verdicts
    published = project.published()
    assert {service for service, _ in published} == set(minimal_stack)
    for service, port in published:
        host_port = project.host_port(service, port)
        assert minimal_stack[service] == f"{project.host}:{host_port}"
        with socket.create_connection((project.host, host_port), timeout=5):
            pass


def test_published_ports_are_bound_to_loopback_only(
    minimal_stack: dict[str, str], docker_manager: dm.E2EDockerManager
) -> None:
    for container in docker_manager.project.docker.compose.ps():
        for bindings in (container.host_config.port_bindings or {}).values():
            for binding in bindings or []:
                assert binding.host_ip == "127.0.0.1", (container.name, binding)


async def test_service_logs_are_retrievable(
    minimal_stack: dict[str, str], docker_manager: dm.E2EDockerManager
) -> None:
    # The whole log: earlier tests may have pushed the start-up line out of any short tail.
    logs = await docker_manager.get_service_logs("kafka", lines=1_000_000)
    assert "Kafka Server started" in logs or "started (kafka.server" in logs, logs[-2000:]
    tail = await docker_manager.get_service_logs("kafka", lines=5)
    assert 0 < len(tail.strip().splitlines()) <= 5


async def test_restarted_service_becomes_ready_and_fixtures_notice(
    minimal_stack: dict[str, str], docker_manager: dm.E2EDockerManager
) -> None:
    project = docker_manager.project
    project.docker.compose.restart(["minio"])
    assert await docker_manager.wait_for_health("minio", timeout=60)
    # The endpoint map follows the port the restarted container got.
    port = project.host_port("minio", 9000)
    assert docker_manager.running_services["minio"] == f"{project.host}:{port}"
    with socket.create_connection((project.host, port), timeout=5):
        pass


def test_teardown_leaves_nothing(
    pytestconfig: pytest.Config, k2_e2e: E2ESession, tmp_path: Path
) -> None:
    project = _throwaway(pytestconfig.rootpath, k2_e2e, tmp_path)
    project.docker.compose.up(["minio", "postgres"], detach=True, wait=True, quiet=True)
    assert _project_resources(project.name)["volumes"], "the throwaway stack made no volume"
    _manager_for(project, k2_e2e).stop_now()
    assert _project_resources(project.name) == {"containers": [], "networks": [], "volumes": []}


# -- failure paths -------------------------------------------------------------------------


async def test_never_healthy_service_fails_setup_fast_with_its_logs(
    pytestconfig: pytest.Config, k2_e2e: E2ESession, tmp_path: Path
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
    project = _throwaway(pytestconfig.rootpath, k2_e2e, tmp_path, broken)
    manager = _manager_for(project, k2_e2e)
    try:
        with pytest.raises(StackUnhealthy) as failure:
            await manager.start_minimal_stack()
    finally:
        await manager.stop_stack()
    message = str(failure.value)
    assert failure.value.service == "minio"
    assert "unhealthy" in failure.value.reason, "must fail on the health verdict, not a timeout"
    assert "probe-says-no" in message, "the health-check output is missing"
    assert "log lines of" in message
    assert "API:" in message or "MinIO" in message, "minio's own log lines are missing"
    assert _project_resources(project.name) == {"containers": [], "networks": [], "volumes": []}


def test_invalid_compose_file_fails_preflight_before_any_container(
    pytestconfig: pytest.Config, k2_e2e: E2ESession, tmp_path: Path
) -> None:
    broken = {"services": {"kafka": {"ports": "not-a-list", "healthcheck": {"retries": "many"}}}}
    project = _throwaway(pytestconfig.rootpath, k2_e2e, tmp_path, broken)
    with pytest.raises(PreflightError, match="the compose files are invalid"):
        dm.run_preflight(project)
    assert _project_resources(project.name)["containers"] == []


def test_taken_pinned_port_stops_the_session_with_one_line(
    pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        code, output = _nested_pytest(
            pytestconfig.rootpath,
            {"K2_MINIO_PORT": str(port), "K2_E2E_ARTIFACTS": str(tmp_path)},
            f"{__file__}::test_minimal_profile_selects_exactly_the_infrastructure",
        )
    assert code == 4, output[-3000:]
    assert f"pinned host port {port} (K2_MINIO_PORT) is already in use" in output, output[-3000:]
    assert "docker compose up" not in output


DELIBERATE_FAILURE = """
import pytest
from tests.e2e.conftest import *  # noqa: F403 (the layer's fixtures, for a file outside tests/)

pytestmark = pytest.mark.e2e


def test_deliberately_fails(minimal_stack):
    assert minimal_stack == {}, "deliberate failure"
"""


def test_failing_test_carries_service_logs_in_report_and_artifacts(
    pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    test_file = tmp_path / "test_deliberate.py"
    test_file.write_text(DELIBERATE_FAILURE)
    artifacts = tmp_path / "artifacts"
    root = pytestconfig.rootpath
    code, output = _nested_pytest(
        root,
        # Minimal even inside the gate (which runs full): the bundle is the point here.
        {"PYTHONPATH": str(root), "K2_E2E_ARTIFACTS": str(artifacts), "K2_E2E_PROFILE": "minimal"},
        "-p",
        "tests.e2e.plugin",
        "-c",
        str(root / "pyproject.toml"),
        "--rootdir",
        str(root),
        str(test_file),
    )
    assert code == 1, output[-3000:]
    assert "deliberate failure" in output
    for section in ("k2-e2e ps", "k2-e2e health", "k2-e2e stats", "k2-e2e logs kafka"):
        assert section in output, f"report lacks {section!r}:\n{output[-3000:]}"
    [bundle] = (artifacts / "failures").iterdir()
    assert (bundle / "logs-kafka.log").read_text().strip()
    assert {"ps.log", "health.log", "stats.log", "README.txt"} <= {p.name for p in bundle.iterdir()}
    project = _throwaway(root, e2e_session(pytestconfig), tmp_path / "env")
    secret = project.service_env("postgres")["POSTGRES_PASSWORD"]
    assert all(secret not in p.read_text() for p in bundle.iterdir()), "a password leaked"


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
