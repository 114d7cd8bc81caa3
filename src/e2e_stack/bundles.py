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

from e2e_stack.engine import Engine, EngineError
from e2e_stack.redact import Redactor

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
    except EngineError as exc:
        return Section(title, f"(could not collect: {exc})")


def _ps(engine: Engine, services: list[str]) -> str:
    rows = [f"{'service':<18} {'container':<44} state"]
    for service, state in engine.observe(services).items():
        rows.append(f"{service:<18} {state.container or '-':<44} {state.describe()}")
    return "\n".join(rows)


def _health(engine: Engine, services: list[str]) -> str:
    lines = []
    for service, state in engine.observe(services).items():
        lines.append(f"{service}: {state.health or 'no healthcheck'}")
        lines += [f"  | {entry}" for entry in state.health_log]
    return "\n".join(lines)


def _stats(engine: Engine) -> str:
    usage = engine.stats()
    if not usage:
        return "(no running container)"
    rows = [f"{'service':<24} {'cpu %':>7} {'memory':>12}"]
    for service, (cpu, mem_mib) in sorted(usage.items()):
        rows.append(f"{service:<24} {cpu:>7.1f} {mem_mib:>9.0f} MiB")
    return "\n".join(rows)


def _logs(engine: Engine, service: str, since: datetime) -> str:
    lines = engine.logs(service, since=since).splitlines()
    if len(lines) > MAX_LOG_LINES:
        lines = [f"(... {len(lines) - MAX_LOG_LINES} earlier lines cut)", *lines[-MAX_LOG_LINES:]]
    return "\n".join(lines) or "(no output since the test began)"


def collect(
    engine: Engine, services: list[str], since: datetime, redact: Redactor
) -> list[Section]:
    """Gather the bundle; every section redacted."""
    sections = [
        _guard("ps", lambda: _ps(engine, services)),
        _guard("health", lambda: _health(engine, services)),
        _guard("stats", lambda: _stats(engine)),
    ]
    sections += [
        _guard(f"logs {service}", lambda s=service: _logs(engine, s, since))  # type: ignore[misc]
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
