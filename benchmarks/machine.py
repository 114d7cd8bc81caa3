"""What machine a benchmark ran on, recorded next to every number it produced."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e_stack import calibration
from k2.stack.engine import compose_version, engine_version


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _memory_gib() -> float:
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _engine_age_s() -> int | None:
    """Seconds since this machine's dockerd started; None if none runs here (remote engine).

    A freshly started engine answered the layer's exec'd readiness checks more slowly: the
    same code measured 1.11 of plain compose minutes after an engine start, 0.87 on one up
    47 minutes. CI starts its own engine, so figures say which state they were taken in.
    """
    found = subprocess.run(
        ["ps", "-o", "etimes=", "-C", "dockerd"], capture_output=True, text=True, check=False
    ).stdout.split()
    return int(found[0]) if found else None


def describe() -> dict[str, Any]:
    """Cores, memory, CPU, kernel, engine and compose versions, load, calibration, and when.

    The calibration figure (a fixed CPU workload's time, measured now) is what makes figures
    from machines of the same size comparable: they can differ 2x per core.
    """
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker_engine": engine_version() or "",
        "compose": compose_version() or "",
        "engine_age_s": _engine_age_s(),
        "load_average_at_start": os.getloadavg(),
        "calibration": calibration.measure().to_json(),
    }


def head_commit(root: Path) -> str:
    """The short commit of `root`'s HEAD: which code a benchmark's numbers belong to."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write a benchmark's results where they are committed (JSON, one trailing newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
