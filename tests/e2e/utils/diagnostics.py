"""The failure bundle: what a developer needs to see why a test against the stack failed.

Per-service logs since the test began, `ps`, health-check logs and resource stats, redacted,
returned as named sections (pytest shows them in the report) and written under the
artifacts directory (CI keeps it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from tests.e2e.utils.health_wait import observe
from tests.e2e.utils.redact import Redactor

MAX_LOG_LINES = 400


@dataclass(frozen=True)
class Section:
    """One titled part of a bundle."""

    title: str
    body: str


def _guard(title: str, make: Callable[[], str]) -> Section:
    """A section whose collection failed still says so, and never hides the test's error."""
    try:
        return Section(title, make())
    except DockerException as exc:
        return Section(title, f"(could not collect: {exc})")


def _ps(docker: DockerClient, services: list[str]) -> str:
    rows = [f"{'service':<18} {'container':<44} state"]
    for service, state in observe(docker, services).items():
        rows.append(f"{service:<18} {state.container or '-':<44} {state.describe()}")
    return "\n".join(rows)


def _health(docker: DockerClient, services: list[str]) -> str:
    lines = []
    for service, state in observe(docker, services).items():
        lines.append(f"{service}: {state.health or 'no healthcheck'}")
        lines += [f"  | {entry}" for entry in state.health_log]
    return "\n".join(lines)


def _stats(docker: DockerClient) -> str:
    containers = docker.compose.ps()
    if not containers:
        return "(no running container)"
    rows = [f"{'container':<44} {'cpu %':>7} {'memory':>12}"]
    for stat in docker.stats(containers):
        mem_mib = (stat.memory_used or 0) / 2**20
        rows.append(
            f"{stat.container_name:<44} {stat.cpu_percentage or 0:>7.1f} {mem_mib:>9.0f} MiB"
        )
    return "\n".join(rows)


def _logs(docker: DockerClient, service: str, since: datetime) -> str:
    text = docker.compose.logs(
        services=[service],
        since=since.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        timestamps=True,
        no_log_prefix=True,
    )
    lines = str(text).splitlines()
    if len(lines) > MAX_LOG_LINES:
        lines = [f"(... {len(lines) - MAX_LOG_LINES} earlier lines cut)", *lines[-MAX_LOG_LINES:]]
    return "\n".join(lines) or "(no output since the test began)"


def collect(
    docker: DockerClient, services: list[str], since: datetime, redact: Redactor
) -> list[Section]:
    """Gather the bundle; every section redacted."""
    sections = [
        _guard("ps", lambda: _ps(docker, services)),
        _guard("health", lambda: _health(docker, services)),
        _guard("stats", lambda: _stats(docker)),
    ]
    sections += [
        _guard(f"logs {service}", lambda s=service: _logs(docker, s, since))  # type: ignore[misc]
        for service in services
    ]
    return [Section(s.title, redact(s.body)) for s in sections]


def bundle_dir(artifacts: Path, nodeid: str) -> Path:
    """A directory name for a test that stays readable and filesystem-safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]
    return artifacts / "failures" / safe


def write(sections: list[Section], directory: Path, header: str) -> Path:
    """Write one file per section plus a README naming the failure; return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    (directory / "README.txt").write_text(f"{header}\ncollected {stamp}\n")
    for section in sections:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", section.title) + ".log"
        (directory / name).write_text(section.body + "\n")
    return directory
