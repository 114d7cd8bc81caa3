"""SIGTERM handling of the plugin's processes, on real processes (no Docker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from e2e_stack.signals import children, descendants

# A worker: on its interrupt it "tears down" (writes a file) slowly, and must not be cut
# short by a second SIGTERM.
WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    from e2e_stack.signals import interrupt_on_sigterm
    interrupt_on_sigterm()
    try:
        print("ready", flush=True)  # inside: the signal may come the moment it is read
        time.sleep(60)
    except KeyboardInterrupt:
        os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM, as from a killed group
        time.sleep(0.5)
        open(sys.argv[1], "w").write("torn down")
    """
)
# A controller: forwards its SIGTERM to its workers and waits for them before it ends.
CONTROLLER = textwrap.dedent(
    """
    import subprocess, sys
    from e2e_stack.signals import interrupt_on_sigterm, wait_for_signalled
    interrupt_on_sigterm(forward=True)
    workers = [subprocess.Popen([sys.executable, "-c", sys.argv[1], path],
                                stdout=subprocess.PIPE, text=True) for path in sys.argv[2:]]
    for worker in workers:
        worker.stdout.readline()
    try:
        print("ready", flush=True)
        for worker in workers:
            worker.wait()
    except KeyboardInterrupt:
        print("left", wait_for_signalled(30.0), flush=True)
    """
)


def test_descendants_are_found_through_every_generation() -> None:
    with subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"]) as shell:
        try:
            deadline = time.monotonic() + 10
            while len(children(shell.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            below = descendants(os.getpid())
            assert shell.pid in below
            assert set(children(shell.pid)) <= set(below)
            assert len(children(shell.pid)) == 2
        finally:
            for pid in children(shell.pid):
                os.kill(pid, signal.SIGKILL)
            shell.kill()


def test_controller_passes_sigterm_on_and_outlives_its_workers_teardown(tmp_path: Path) -> None:
    marks = [tmp_path / "gw0", tmp_path / "gw1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, WORKER, *map(str, marks)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as controller:
        assert controller.stdout is not None
        assert controller.stdout.readline().strip() == "ready"
        controller.send_signal(signal.SIGTERM)
        out, _ = controller.communicate(timeout=30)
    # Each worker was interrupted, ignored the second SIGTERM and finished its teardown
    # before the controller ended.
    assert out.strip() == "left []"
    assert [mark.read_text() for mark in marks] == ["torn down", "torn down"]
