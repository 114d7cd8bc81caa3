"""Who started a stack: the labels this layer puts on everything it creates.

A later run reads them back to tell a stack whose run died (SIGKILL, CI cancel) from one that
belongs to a live run or to somebody else, before it removes anything.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LabelKeys:
    """The label names under one namespace (the `e2e_label_namespace` setting)."""

    namespace: str

    def _key(self, name: str) -> str:
        return f"{self.namespace}.{name}"

    @property
    def run_id(self) -> str:
        """Which run made the resource."""
        return self._key("run-id")

    @property
    def pid(self) -> str:
        """The pid of the pytest process that owns the run."""
        return self._key("pid")

    @property
    def pid_start(self) -> str:
        """That process's kernel start time (tells it from a reused pid)."""
        return self._key("pid-start")

    @property
    def host(self) -> str:
        """The machine the run ran on."""
        return self._key("host")

    @property
    def started(self) -> str:
        """When the run began (epoch seconds)."""
        return self._key("started-at")

    @property
    def keep(self) -> str:
        """Set to "true" on stacks kept on purpose (keep/reuse): never swept."""
        return self._key("keep")


def process_start_ticks(pid: int) -> str | None:
    """Kernel start time of a process, which tells a live pid from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the parenthesised command name (which may hold spaces).
    return stat.rsplit(")", 1)[1].split()[19]


def pid_is_alive(pid: int, start_ticks: str) -> bool:
    """True when `pid` runs and is the same process that wrote the labels."""
    current = process_start_ticks(pid)
    if current is not None:
        return current == start_ticks
    # No /proc (macOS): fall back to signal 0; a reused pid then counts as alive (safe side).
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunIdentity:
    """The pytest run (the xdist controller, when there is one) that owns a stack."""

    run_id: str
    pid: int
    pid_start: str
    host: str
    started_at: float

    @classmethod
    def current(cls, run_id: str | None = None) -> RunIdentity:
        """The identity of the current process, now (under `run_id` when one is given)."""
        pid = os.getpid()
        return cls(
            run_id=run_id or uuid.uuid4().hex[:10],
            pid=pid,
            pid_start=process_start_ticks(pid) or "",
            host=socket.gethostname(),
            started_at=time.time(),
        )

    def labels(self, keys: LabelKeys) -> dict[str, str]:
        """Labels for every container, network and volume of this run's stack."""
        return {
            keys.run_id: self.run_id,
            keys.pid: str(self.pid),
            keys.pid_start: self.pid_start,
            keys.host: self.host,
            keys.started: f"{self.started_at:.0f}",
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str], keys: LabelKeys) -> RunIdentity | None:
        """Read an identity back, or None when the labels are not (all) ours."""
        try:
            return cls(
                run_id=labels[keys.run_id],
                pid=int(labels[keys.pid]),
                pid_start=labels[keys.pid_start],
                host=labels[keys.host],
                started_at=float(labels[keys.started]),
            )
        except (KeyError, ValueError):
            return None

    def project_name(self, prefix: str, worker: str | None = None) -> str:
        """A compose project name unique to this run (and xdist worker, if any)."""
        suffix = f"-{_slug(worker)}" if worker else ""
        return f"{prefix}-{self.run_id}{suffix}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())
