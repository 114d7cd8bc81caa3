"""Small subprocess helpers shared by the stack tooling."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
TICK_EVERY_S: Final = 15.0
"""The longest a build step may stay silent (issue 13: a newcomer never stares at nothing)."""
SPEAK_AFTER_S: Final = TICK_EVERY_S - 1.0
"""When the ticker speaks: a second early, since it looks twice a second and lines lag."""


def run(
    args: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output, never raising on a non-zero exit.

    Callers decide what a failure means; they need the output to say why.
    """
    try:
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(list(args), 127, "", f"{args[0]}: not found ({exc})")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return subprocess.CompletedProcess(list(args), 124, out, f"timed out after {timeout}s")


def tail(text: str, lines: int = 15) -> str:
    """Last lines of a command's output, enough to show why it failed."""
    return "\n".join(text.strip().splitlines()[-lines:])


class Ticker:
    """Says what a long step is doing after `every_s` seconds of silence (none reaches 15 s).

    Why: a cold build fetches and compiles for minutes; a newcomer watching a terminal that
    says nothing for four minutes cannot tell a slow download from a hang. The step's own
    output is parsed into counts ("downloaded", "compiled", ...) and the item it is on now.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        every_s: float = SPEAK_AFTER_S,
        measure: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._say = say
        self._every_s = every_s
        self._measure = measure
        self._clock = clock
        self._started = self._said_at = clock()
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.current = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, kind: str, item: str) -> None:
        """One more `kind` (e.g. "downloaded"), and it is the current item."""
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.current = f"{kind} {item}"

    def doing(self, item: str) -> None:
        """The current item, not counted (e.g. a build's latest output line)."""
        with self._lock:
            self.current = _ANSI.sub("", item)

    def said(self) -> None:
        """The caller printed a line itself: the next tick is due `every_s` from now."""
        with self._lock:
            self._said_at = self._clock()

    def status(self) -> str:
        """Elapsed time, the counts so far, the current item and the measure, on one line."""
        with self._lock:
            parts = [f"{self._clock() - self._started:.0f}s"]
            parts += [f"{count} {kind}" for kind, count in self.counts.items()]
            current = self.current
        measured = self._measure() if self._measure is not None else ""
        if measured:
            parts.append(measured)
        line = ", ".join(parts)
        return f"{line}; last: {current[:90]}" if current else line

    def tick(self) -> bool:
        """Say the status if nothing was said for `every_s`; whether it did."""
        with self._lock:
            due = self._clock() - self._said_at >= self._every_s
            if due:
                self._said_at = self._clock()
        if due:
            self._say(f"still working: {self.status()}")
        return due

    def __enter__(self) -> Ticker:
        self._thread = threading.Thread(target=self._run, name="k2-ticker", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.tick()


def run_reporting(
    args: Sequence[str],
    ticker: Ticker,
    parse: Callable[[str], tuple[str, str] | None],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Like `run`, with stdout and stderr as one text, telling `ticker` what each line means.

    `parse` maps an output line to (kind, item), or None for lines that say nothing countable.
    """
    try:
        proc = subprocess.Popen(
            list(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(list(args), 127, "", f"{args[0]}: not found ({exc})")
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, expire) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            found = parse(line.rstrip("\n"))
            if found is not None:
                ticker.note(*found)
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    output = "".join(lines)
    if expired.is_set():
        return subprocess.CompletedProcess(list(args), 124, output, f"timed out after {timeout}s")
    return subprocess.CompletedProcess(list(args), code, output, "")
