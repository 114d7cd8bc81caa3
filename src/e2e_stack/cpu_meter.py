"""CPU time used by each container of a local stack, by given processes and by the machine.

`docker stats` samples for a second and costs the engine CPU on every call; the cgroup
counters the kernel keeps for every container are exact and cost one small file read. Two
readings around a measured run say how many CPU-seconds each service spent in it, which is
what tells a slow pipeline from a slow machine, and what an observer costs.

Works for containers of a local engine (their processes are visible in /proc); for a remote
engine the services are simply absent from a reading and callers report them as unknown.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")


def _cgroup_of(pid: int, proc: Path) -> tuple[str, str] | None:
    """('v1', path) of the cpuacct hierarchy, or ('v2', path) of the unified one."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return "v1", path
        if controllers == "":
            unified = path
    return ("v2", unified) if unified is not None else None


def cpu_seconds_of_pid(
    pid: int, proc: Path = Path("/proc"), root: Path = CGROUP_ROOT
) -> float | None:
    """CPU seconds used so far by the cgroup that process `pid` is in (None if unreadable)."""
    found = _cgroup_of(pid, proc)
    if found is None:
        return None
    version, path = found
    try:
        if version == "v1":
            for mount in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
                usage = root / mount / path.lstrip("/") / "cpuacct.usage"
                if usage.exists():
                    return int(usage.read_text()) / 1e9
            return None
        for line in (root / path.lstrip("/") / "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class CpuReading:
    """CPU seconds per service at one moment (a service whose counter was unreadable is absent)."""

    seconds: Mapping[str, float]

    def since(self, earlier: CpuReading, wall_s: float) -> dict[str, float]:
        """Average cores each service used between `earlier` and this reading."""
        if wall_s <= 0:
            return {}
        return {
            service: round((used - earlier.seconds[service]) / wall_s, 3)
            for service, used in self.seconds.items()
            if service in earlier.seconds and used >= earlier.seconds[service]
        }


def process_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float | None:
    """CPU seconds (user + system) one process has used so far, threads included."""
    try:
        fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds(proc: Path = Path("/proc")) -> float | None:
    """CPU seconds every core of this machine has spent busy (not idle, not waiting on I/O)."""
    try:
        values = [int(v) for v in (proc / "stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def read(containers: Mapping[str, int], processes: Mapping[str, Iterable[int]]) -> CpuReading:
    """CPU seconds so far of containers, processes and the whole machine ("machine").

    `containers` maps a name to the host pid of a container's main process (counted by its
    cgroup), `processes` a name to pids (counted per process). A name whose counters cannot
    be read (a remote engine's container) is left out.
    """
    seconds: dict[str, float] = {}
    for name, pid in containers.items():
        value = cpu_seconds_of_pid(pid) if pid > 0 else None
        if value is not None:
            seconds[name] = value
    for name, pids in processes.items():
        found = [process_cpu_seconds(pid) for pid in pids]
        if found and all(value is not None for value in found):
            seconds[name] = sum(value for value in found if value is not None)
    machine = machine_cpu_seconds()
    if machine is not None:
        seconds["machine"] = machine
    return CpuReading(seconds)
