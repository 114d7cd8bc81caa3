"""SIGTERM as Ctrl-C: a CI cancel or `kill -TERM` must still tear the stacks down.

A process that starts stacks turns its first SIGTERM into KeyboardInterrupt, so pytest ends
through its teardown; later ones are ignored, because a second interrupt inside teardown
would cut `compose down` short. The xdist controller starts no stack but owns the workers:
it passes the signal on to them at once (xdist alone would let each finish its test, start
the next, and kill it ten seconds later), remembers every process below it at that moment
(workers, and the pytest sessions and compose calls they run), and waits for them before
it ends, so that nothing of the run is still tearing down when it has exited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

_signalled: list[int] = []
"""The controller's descendants when its SIGTERM came (empty until then)."""


def interrupt_on_sigterm(forward: bool = False) -> None:
    """Turn the first SIGTERM into KeyboardInterrupt, unless someone else handles it.

    Args:
        forward: also send SIGTERM to this process's children (the xdist controller's
            workers), and remember all its descendants for `wait_for_signalled`.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # Only the main thread may set handlers (and receives signals).
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if forward:
            me = os.getpid()
            _signalled[:] = descendants(me)
            for child in children(me):
                _kill(child)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc (none where there is no /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(word) for word in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # The thread ended, or this kernel does not list children.
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children first."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        below = [child for parent in frontier for child in children(parent)]
        found += below
        frontier = below
    return found


def wait_for_signalled(deadline_s: float) -> list[int]:
    """Wait until the processes remembered at SIGTERM have ended; those still running.

    Polls /proc every 0.2 s: a few stat calls, nothing the stack would notice.
    """
    end = time.monotonic() + deadline_s
    alive = _alive(_signalled)
    while alive and time.monotonic() < end:
        time.sleep(0.2)
        alive = _alive(alive)
    return alive


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if _running(pid)]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # A zombie has ended; only its parent's wait is missing.


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
