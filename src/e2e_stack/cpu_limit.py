"""Run the stack as if on a slower machine: one CPU quota over every container and the tests.

A gate tuned on one machine can fail on a CI runner that is twice as slow per core. To see
that before users do, `--e2e-cpus N` puts every container of the stack, and the pytest
process with the load generators it starts, into one cgroup whose CPU quota is N cores in
total (a CFS quota over a short period, so nothing stalls for long). Parallelism is kept;
capacity is what shrinks, as on a slower machine. `--e2e-cpus 1` on a two-core machine
gives the whole system half the CPU it would have.

This needs the engine's cgroups on this machine (a local engine with the cgroupfs driver,
cgroup v1 or v2); anything else is refused by preflight with one line. Stacks started with
the same limit share its cgroup, as they would share a slow machine; the cgroup is removed
by the last one to finish (a directory still in use cannot be removed, so nobody removes
another's).
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
PERIOD_US: Final = 10_000
"""10 ms: a group that spent its quota waits at most this long (the default 100 ms would add
stalls of up to 50 ms to every hand-off a commit makes). Shorter is not better: at 2 ms,
below the kernel's 5 ms bandwidth slice, commits took twice as long (measured)."""


class CpuLimitError(RuntimeError):
    """The limit cannot be applied here; the message names the reason and the way out."""


def _unified(root: Path) -> bool:
    return (root / "cgroup.controllers").exists()


def _descends(pid: int, ancestor: int) -> bool:
    """Whether `ancestor` started `pid`, directly or not (per /proc)."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
    return False


@dataclass(frozen=True)
class CpuLimit:
    """A CPU quota of `cpus` cores shared by everything placed in the cgroup `name`."""

    cpus: float
    prefix: str
    root: Path = CGROUP_ROOT
    period_us: int = PERIOD_US

    @property
    def name(self) -> str:
        """The cgroup's name: one per limit value, shared by runs that use the same value."""
        return f"{self.prefix}-cpus-{self.cpus:g}".replace(".", "_")

    @property
    def cgroup_parent(self) -> str:
        """What compose's `cgroup_parent` needs for the engine to put containers in it."""
        return f"/{self.name}"

    @property
    def quota_us(self) -> int:
        """The CFS quota per period."""
        return round(self.cpus * self.period_us)

    def _cpu_dir(self) -> Path:
        return self.root / self.name if _unified(self.root) else self.root / "cpu" / self.name

    def check(self, cgroup_driver: str, engine_is_local: bool) -> None:
        """Raise CpuLimitError unless the engine's containers can be put under this cgroup."""
        if not engine_is_local:
            raise CpuLimitError(
                "--e2e-cpus needs the engine on this machine (its cgroups are set here); "
                "unset DOCKER_HOST/DOCKER_CONTEXT or drop the option"
            )
        if cgroup_driver != "cgroupfs":
            raise CpuLimitError(
                f"--e2e-cpus needs the engine's cgroupfs driver, this one uses {cgroup_driver!r}: "
                "start dockerd with --exec-opt native.cgroupdriver=cgroupfs or drop the option"
            )
        if not 0 < self.cpus <= (os.cpu_count() or 1):
            raise CpuLimitError(
                f"--e2e-cpus {self.cpus:g} must be above 0 and at most the {os.cpu_count()} "
                "cores this machine has"
            )
        parent = self._cpu_dir().parent
        if _unified(self.root):
            controls = (self.root / "cgroup.subtree_control").read_text().split()
            if "cpu" not in controls:
                raise CpuLimitError(
                    f"the cpu controller is not enabled in {self.root}/cgroup.subtree_control; "
                    "enable it (echo +cpu > ...) or drop --e2e-cpus"
                )
        if not os.access(parent, os.W_OK):
            raise CpuLimitError(
                f"--e2e-cpus must create a cgroup under {parent} and cannot write there; "
                "run as root or drop the option"
            )

    def create(self) -> None:
        """Create the cgroup (or find it) and set its quota; idempotent."""
        directory = self._cpu_dir()
        directory.mkdir(exist_ok=True)
        if _unified(self.root):
            (directory / "cpu.max").write_text(f"{self.quota_us} {self.period_us}\n")
        else:
            # The period first: a quota is checked against the period in force.
            (directory / "cpu.cfs_period_us").write_text(f"{self.period_us}\n")
            (directory / "cpu.cfs_quota_us").write_text(f"{self.quota_us}\n")

    def stat(self) -> dict[str, int]:
        """The cgroup's cpu.stat (nr_periods, nr_throttled, ...): how often the quota bit."""
        path = self._cpu_dir() / "cpu.stat"
        if not path.exists():
            return {}
        return {
            key: int(value)
            for key, value in (line.split() for line in path.read_text().splitlines())
        }

    def join(self, pid: int) -> str:
        """Move process `pid` (all its threads) into the cgroup; return where it was."""
        before = self._current_of(pid)
        (self._cpu_dir() / "cgroup.procs").write_text(f"{pid}\n")
        return before

    def leave(self, pid: int, back_to: str) -> None:
        """Move `pid` and every process it started that is still here back to `back_to`.

        Children outlive their use at times (multiprocessing's resource tracker lives as long
        as its parent): left here, they would keep the cgroup from being removed.
        """
        base = self.root if _unified(self.root) else self.root / "cpu"
        target = base / back_to.lstrip("/") / "cgroup.procs"
        here = self._cpu_dir() / "cgroup.procs"
        members = [int(p) for p in here.read_text().split()] if here.exists() else []
        for member in [pid, *(m for m in members if m != pid and _descends(m, pid))]:
            with contextlib.suppress(ProcessLookupError):
                target.write_text(f"{member}\n")

    def _current_of(self, pid: int) -> str:
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            wanted = controllers == "" if _unified(self.root) else "cpu" in controllers.split(",")
            if wanted:
                return path
        return "/"

    def remove(self) -> bool:
        """Remove the cgroup (and the empty parents the engine made in other hierarchies).

        Returns False while something still uses it (another run with the same limit): that
        run removes it when it finishes.
        """
        directories = (
            [self.root / self.name]
            if _unified(self.root)
            else [hierarchy / self.name for hierarchy in self.root.iterdir()]
        )
        removed = True
        for directory in directories:
            try:
                directory.rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise
                removed = False
        return removed


def remove_unused(prefix: str, root: Path = CGROUP_ROOT) -> list[str]:
    """Remove the limit cgroups of runs that died before removing theirs (kill -9).

    Only empty ones go: a cgroup in use cannot be removed, so a live run keeps its own.
    """
    base = root if _unified(root) else root / "cpu"
    removed = []
    for directory in sorted(base.glob(f"{prefix}-cpus-*")) if base.is_dir() else []:
        cpus = directory.name.removeprefix(f"{prefix}-cpus-").replace("_", ".")
        try:
            limit = CpuLimit(float(cpus), prefix, root)
        except ValueError:
            continue
        if limit.name == directory.name and limit.remove():
            removed.append(directory.name)
    return removed


RELEASE_S: Final = 5.0
"""How long the last user waits for processes it started to leave before removing the cgroup."""


@contextlib.contextmanager
def held(limit: CpuLimit, pid: int) -> Iterator[CpuLimit]:
    """Create the limit, put process `pid` (and what it starts) in it; undo both at the end.

    Processes started meanwhile (load generators, a docker CLI call) may take a moment to
    exit; another run with the same limit keeps the cgroup busy for good, and removes it
    itself when it finishes.
    """
    limit.create()
    came_from = limit.join(pid)
    try:
        yield limit
    finally:
        limit.leave(pid, came_from)
        deadline = time.monotonic() + RELEASE_S
        while not limit.remove() and time.monotonic() < deadline:
            time.sleep(0.1)
