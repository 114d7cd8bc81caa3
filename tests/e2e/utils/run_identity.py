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

PROJECT_PREFIX = "k2e2e"
LABEL_PREFIX = "org.k2.e2e"
LABEL_RUN_ID = f"{LABEL_PREFIX}.run-id"
LABEL_PID = f"{LABEL_PREFIX}.pid"
LABEL_PID_START = f"{LABEL_PREFIX}.pid-start"
LABEL_HOST = f"{LABEL_PREFIX}.host"
LABEL_STARTED = f"{LABEL_PREFIX}.started-at"
LABEL_KEEP = f"{LABEL_PREFIX}.keep"
LABEL_CONFIG_HASH = f"{LABEL_PREFIX}.config-hash"


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
    def current(cls) -> RunIdentity:
        """The identity of the current process, now."""
        pid = os.getpid()
        return cls(
            run_id=uuid.uuid4().hex[:10],
            pid=pid,
            pid_start=process_start_ticks(pid) or "",
            host=socket.gethostname(),
            started_at=time.time(),
        )

    def labels(self) -> dict[str, str]:
        """Labels for every container, network and volume of this run's stack."""
        return {
            LABEL_RUN_ID: self.run_id,
            LABEL_PID: str(self.pid),
            LABEL_PID_START: self.pid_start,
            LABEL_HOST: self.host,
            LABEL_STARTED: f"{self.started_at:.0f}",
        }

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> RunIdentity | None:
        """Read an identity back, or None when the labels are not (all) ours."""
        try:
            return cls(
                run_id=labels[LABEL_RUN_ID],
                pid=int(labels[LABEL_PID]),
                pid_start=labels[LABEL_PID_START],
                host=labels[LABEL_HOST],
                started_at=float(labels[LABEL_STARTED]),
            )
        except (KeyError, ValueError):
            return None

    def project_name(self, worker: str | None = None) -> str:
        """A compose project name unique to this run (and xdist worker, if any)."""
        suffix = f"-{_slug(worker)}" if worker else ""
        return f"{PROJECT_PREFIX}-{self.run_id}{suffix}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())
