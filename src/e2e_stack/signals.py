"""SIGTERM as Ctrl-C: a CI cancel or `kill -TERM` must still tear the stacks down."""

from __future__ import annotations

import signal
import threading
from types import FrameType


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, unless someone else already handles it.

    pytest ends an interrupted session through its normal teardown; the default SIGTERM
    action would end the process on the spot and leave its stack running.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # Only the main thread may set handlers (and receives signals).
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
