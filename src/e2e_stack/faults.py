"""Faults as tools: break one service of the running stack, always put it back, and say when.

Each fault is a context manager on `Faults` (the `stack_faults` fixture): entering breaks the
service, leaving restores it (also when the test failed inside) and then waits until the
whole stack is ready again, so the next test starts on a working stack. Every fault is
recorded with when it began, ended and when the stack was ready again; the records go into
the failure bundle and the end-of-run summary, so a reader sees what the test did to the
stack and how long recovery took.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from e2e_stack.engine import EngineError
from e2e_stack.project import write_overlay

if TYPE_CHECKING:  # the plugin imports this module at start-up, unit runs included
    from e2e_stack.manager import StackManager

FREEZE_ATTEMPTS: Final = 3
"""Seen under a 0.625-core quota: `pause minio` refused once with "OCI runtime pause failed:
unable to freeze", which failed a fault case before its outage began."""
_UNFROZEN: Final = "unable to freeze"


@dataclass
class FaultRecord:
    """One fault: what was done to which service, and when (monotonic seconds)."""

    kind: str
    service: str
    began: float
    ended: float | None = None
    ready_again: float | None = None
    error: str | None = None

    def describe(self, origin: float | None = None) -> str:
        """`kill kafka: 0.0 -> 20.1 s, stack ready again at 31.4 s` (relative to `origin`)."""
        zero = self.began if origin is None else origin

        def at(moment: float | None) -> str:
            return "?" if moment is None else f"{moment - zero:.1f} s"

        text = f"{self.kind} {self.service}: {at(self.began)} -> {at(self.ended)}"
        text += f", stack ready again at {at(self.ready_again)}"
        return text + (f" (restore failed: {self.error})" if self.error else "")


@dataclass
class Faults:
    """Faults for the services of one running stack.

    Args:
        manager: the stack to break and restore.
        records: where every fault is recorded (shared with the report).
        clock: monotonic clock (injected by tests).
    """

    manager: StackManager
    records: list[FaultRecord] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    """Epoch seconds, to compare with the engine's health-probe times."""

    def _check(self, service: str) -> None:
        if service not in self.manager.project.config["services"]:
            raise KeyError(
                f"{service!r} is not a service of the running profile "
                f"{self.manager.active_profile or '(none)'}"
            )

    @contextlib.contextmanager
    def _fault(
        self, kind: str, service: str, breaks: Callable[[], None], restores: Callable[[], None]
    ) -> Iterator[FaultRecord]:
        self._check(service)
        record = FaultRecord(kind, service, self.clock())
        self.records.append(record)
        breaks()
        try:
            yield record
        finally:
            record.ended = self.clock()
            try:
                restores()
                self.manager.wait_recovered(self.wall_clock())
            except Exception as exc:
                record.error = str(exc).splitlines()[0]
                raise
            record.ready_again = self.clock()

    def killed(
        self, service: str, signal: str = "SIGKILL"
    ) -> contextlib.AbstractContextManager[FaultRecord]:
        """The service's container killed (SIGKILL by default), started again on leaving."""
        engine = self.manager.project.engine
        return self._fault(
            "kill", service, lambda: engine.kill(service, signal), lambda: engine.start(service)
        )

    def stopped(self, service: str) -> contextlib.AbstractContextManager[FaultRecord]:
        """The service stopped (SIGTERM, then its stop timeout), started again on leaving."""
        engine = self.manager.project.engine
        return self._fault(
            "stop", service, lambda: engine.stop(service), lambda: engine.start(service)
        )

    def paused(self, service: str) -> contextlib.AbstractContextManager[FaultRecord]:
        """The service's processes frozen (cgroup freezer), thawed on leaving.

        A freeze that the runtime could not finish in its own time ("unable to freeze": runc
        gives up while a busy, CPU-throttled process is still running, and thaws it again) is
        tried again, up to FREEZE_ATTEMPTS times; any other refusal fails the fault at once.
        """
        engine = self.manager.project.engine

        def freeze() -> None:
            for attempt in range(1, FREEZE_ATTEMPTS + 1):
                try:
                    engine.pause(service)
                    return
                except EngineError as exc:
                    if _UNFROZEN not in str(exc) or attempt == FREEZE_ATTEMPTS:
                        raise

        return self._fault("pause", service, freeze, lambda: engine.unpause(service))

    def disconnected(self, service: str) -> contextlib.AbstractContextManager[FaultRecord]:
        """The service cut from every network of the project, reconnected on leaving."""
        engine = self.manager.project.engine
        networks: list[str] = []

        def cut() -> None:
            networks.extend(engine.disconnect(service))

        return self._fault("disconnect", service, cut, lambda: engine.reconnect(service, networks))

    def reconfigured(
        self, service: str, environment: Mapping[str, str]
    ) -> contextlib.AbstractContextManager[FaultRecord]:
        """The service re-created with `environment` over its own, as the files say on leaving.

        For a wrong address, or a tighter limit. The override is an overlay file on top of the
        project's, so everything else about the container (labels, CPU limit, networks) stays
        as the stack made it.
        """
        project = self.manager.project
        overlay = {"services": {service: {"environment": dict(environment)}}}
        folder = Path(tempfile.mkdtemp(prefix="e2e-reconfigured-"))
        changed = project.with_overlay(write_overlay(folder / f"{service}.json", overlay))

        def restore() -> None:
            try:
                project.engine.recreate(service)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        return self._fault(
            "reconfigure", service, lambda: changed.engine.recreate(service), restore
        )

    def restart(self, service: str) -> FaultRecord:
        """Restart the service now and wait until the stack is ready again."""
        engine = self.manager.project.engine
        with self._fault("restart", service, lambda: engine.restart(service), lambda: None) as r:
            pass
        return r

    def rows(self, test: str) -> list[dict[str, object]]:
        """One JSON row per fault of `test`: how long it lasted, how long recovery took."""
        return [
            {
                "test": test,
                "fault": record.kind,
                "service": record.service,
                "fault_s": _span(record.began, record.ended),
                "recovery_s": _span(record.ended, record.ready_again),
                "error": record.error,
            }
            for record in self.records
        ]

    def lines(self) -> list[str]:
        """One line per fault, times relative to the first."""
        if not self.records:
            return []
        origin = self.records[0].began
        return [record.describe(origin) for record in self.records]


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 2)


def format_rows(rows: list[dict[str, object]]) -> list[str]:
    """The summary's fault table: test, fault, service, seconds out, seconds to recover."""
    if not rows:
        return []

    def cell(value: object) -> str:
        return "-" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)

    header = ("test", "fault", "service", "out s", "recovery s")
    body = [
        (
            str(row["test"]).rsplit("::", 1)[-1][-48:],
            cell(row["fault"]),
            cell(row["service"]),
            cell(row["fault_s"]),
            cell(row["recovery_s"]) if not row["error"] else "FAILED",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    return [
        "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in (header, *body)
    ]
