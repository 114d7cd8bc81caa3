"""pytest plugin of the K2 E2E layer: options, run identity, failure bundles, summary.

Registered from the repository's root `conftest.py`, so its options exist whatever path
pytest is given. The fixtures themselves are in `tests/e2e/conftest.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.utils.cpu_limit import CpuLimit
from tests.e2e.utils.options import E2EOptions, add_options
from tests.e2e.utils.performance_monitor import JSON_NAME, PLOT_NAME, PerformanceMonitor
from tests.e2e.utils.redact import Redactor
from tests.e2e.utils.report import ServiceRow, format_table, rows_for
from tests.e2e.utils.run_identity import RunIdentity

# This module loads with every pytest run, unit runs included: the Docker libraries
# (python-on-whales, pytest-docker, anyio) load only when a stack is used.
if TYPE_CHECKING:
    from tests.e2e.utils.docker_manager import E2EDockerManager
    from tests.e2e.utils.stats_sampler import StatsSampler

CGROUP_RELEASE_S = 5.0
STACK_FIXTURES = frozenset({"docker_manager", "minimal_stack", "full_stack", "api_client"})
_RUN_ID_KEY = "k2_e2e_run_id"
_SUMMARY_KEY = "k2_e2e_summary"
_PERFORMANCE_KEY = "k2_e2e_performance"


@dataclass
class E2ESession:
    """Everything the layer knows about the current pytest process."""

    options: E2EOptions
    identity: RunIdentity
    worker: str | None
    performance: PerformanceMonitor
    manager: E2EDockerManager | None = None
    sampler: StatsSampler | None = None
    redactor: Redactor = field(default_factory=Redactor)
    notes: list[str] = field(default_factory=list)
    bundles: list[Path] = field(default_factory=list)
    worker_rows: list[ServiceRow] = field(default_factory=list)
    setup_bundle: Path | None = None
    cpu_limit: tuple[CpuLimit, str] | None = None
    """The --e2e-cpus cgroup this process joined, and the cgroup it came from."""

    def release_cpu_limit(self) -> None:
        """Leave the --e2e-cpus cgroup and remove it unless another run still uses it."""
        if self.cpu_limit is None:
            return
        limit, came_from = self.cpu_limit
        self.cpu_limit = None
        limit.leave(os.getpid(), came_from)
        # Processes this run started in it (the feed's workers, a docker CLI call of the
        # stats sampler) may take a moment to exit; another run's keep it busy for good.
        deadline = time.monotonic() + CGROUP_RELEASE_S
        while not limit.remove() and time.monotonic() < deadline:
            time.sleep(0.1)

    def rows(self) -> list[ServiceRow]:
        """Summary rows of this process's stack plus those reported by xdist workers."""
        rows = list(self.worker_rows)
        if self.manager is not None:
            peaks = {
                name: (peak.cpu_percent, peak.memory_mib)
                for name, peak in (self.sampler.peaks if self.sampler else {}).items()
            }
            rows += rows_for(self.manager.project.name, self.manager.timings.ready_after_s, peaks)
        return rows


SESSION = pytest.StashKey[E2ESession]()


def e2e_session(config: pytest.Config) -> E2ESession:
    """The layer's state for this pytest process."""
    return config.stash[SESSION]


def pytest_addoption(parser: pytest.Parser) -> None:
    """--e2e-profile, --e2e-keep, --e2e-reuse, --e2e-artifacts (and ini keys)."""
    add_options(parser)


def _sigterm_to_interrupt(signum: int, frame: FrameType | None) -> None:
    """A CI cancel sends SIGTERM: turn it into Ctrl-C so teardown still runs."""
    raise KeyboardInterrupt(f"signal {signum}")


class _XdistController:
    """Hooks that exist only when pytest-xdist is active, on the controller."""

    def __init__(self, session: E2ESession) -> None:
        self._session = session

    def pytest_configure_node(self, node: Any) -> None:
        """Every worker's stack carries the controller's run id."""
        node.workerinput[_RUN_ID_KEY] = self._session.identity.run_id

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Collect each worker's summary rows and measured runs."""
        output = getattr(node, "workeroutput", {})
        for row in output.get(_SUMMARY_KEY, []):
            self._session.worker_rows.append(ServiceRow(**row))
        self._session.performance.extend_from_json(output.get(_PERFORMANCE_KEY, []))


def pytest_configure(config: pytest.Config) -> None:
    """Resolve options once (a bad value stops pytest with one line) and name this run."""
    options = E2EOptions.from_config(config)
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    identity = RunIdentity.current()
    if _RUN_ID_KEY in workerinput:
        identity = RunIdentity(
            workerinput[_RUN_ID_KEY],
            identity.pid,
            identity.pid_start,
            identity.host,
            identity.started_at,
        )
    session = E2ESession(
        options, identity, workerinput.get("workerid"), PerformanceMonitor(options.freshness_slo_s)
    )
    config.stash[SESSION] = session
    if session.worker is None and selects_e2e(config.option.markexpr or ""):
        _clear_previous_reports(options.artifacts)
    if session.worker is None and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    if session.worker is None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(session), "k2-e2e-xdist")


def selects_e2e(markexpr: str) -> bool:
    """Whether `-m markexpr` selects a test marked e2e (only then is a run an E2E run).

    Uses pytest's own expression parser (private, pinned pytest; unit-tested) so that
    'not e2e' and 'e2e and not slow' mean what pytest makes of them.
    """
    if not markexpr:
        return False
    from _pytest.mark.expression import Expression

    def is_e2e(name: str, /, **_: str | int | bool | None) -> bool:
        return name == "e2e"

    return Expression.compile(markexpr).evaluate(is_e2e)


def _clear_previous_reports(artifacts: Path) -> None:
    """Remove what an earlier run wrote, so the artifacts describe this run only.

    Only the layer's own names: the directory may be shared with other tools.
    """
    shutil.rmtree(artifacts / "failures", ignore_errors=True)
    for name in (JSON_NAME, PLOT_NAME):
        (artifacts / name).unlink(missing_ok=True)
    for summary in artifacts.glob("stack-summary-*.json"):
        summary.unlink(missing_ok=True)


def _uses_stack(item: pytest.Item) -> bool:
    return bool(STACK_FIXTURES.intersection(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember when the test began: its failure bundle shows logs from then on."""
    item.stash[_STARTED] = datetime.now(UTC)


_STARTED = pytest.StashKey[datetime]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the failure bundle to every failed test (or failed setup) that used the stack."""
    report = yield
    session = item.config.stash.get(SESSION, None)
    if (
        report.failed
        and session is not None
        and session.manager is not None
        and _uses_stack(item)
        and report.when in ("setup", "call")
    ):
        _attach_bundle(session, item, report)
    return report


def _attach_bundle(session: E2ESession, item: pytest.Item, report: pytest.TestReport) -> None:
    from tests.e2e.utils import diagnostics

    manager = session.manager
    assert manager is not None
    if report.when == "setup" and manager.failure is not None and session.setup_bundle:
        # The stack failed once; every later test's setup error points at the same bundle.
        report.sections.append(("k2-e2e bundle", f"see {session.setup_bundle}"))
        return
    since = item.stash.get(_STARTED, datetime.now(UTC))
    if report.when == "setup" and manager.failure is not None:
        since = datetime.fromtimestamp(session.identity.started_at, UTC)
    services = sorted(manager.project.everything()["services"])
    sections = diagnostics.collect(manager.project.docker, services, since, session.redactor)
    directory = diagnostics.write(
        sections,
        diagnostics.bundle_dir(session.options.artifacts, item.nodeid),
        header=f"{item.nodeid} failed in {report.when} (stack {manager.project.name})",
    )
    session.bundles.append(directory)
    if report.when == "setup" and manager.failure is not None:
        session.setup_bundle = directory
    for section in sections:
        report.sections.append((f"k2-e2e {section.title}", section.body))
    report.sections.append(("k2-e2e bundle", f"written to {directory}"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Safety net: the stack goes down even if fixture teardown never ran (Ctrl-C in setup)."""
    state = session.config.stash.get(SESSION, None)
    if state is None:
        return
    if state.sampler is not None:
        state.sampler.stop()
    if state.manager is not None:
        state.manager.stop_now()
    state.release_cpu_limit()
    rows = state.rows()
    if rows:
        summary = state.options.artifacts / f"stack-summary-{state.worker or 'main'}.json"
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps([row.to_json() for row in rows], indent=2) + "\n")
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_SUMMARY_KEY] = [row.to_json() for row in rows]
        workeroutput[_PERFORMANCE_KEY] = [run.to_json() for run in state.performance.runs]
    else:
        # The controller (or a plain run) writes the report once, with every worker's runs.
        state.notes += [
            f"performance report: {path}"
            for path in state.performance.write(state.options.artifacts)
        ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Per-service ready time and peak CPU/memory, and where the artifacts are."""
    state = config.stash.get(SESSION, None)
    if state is None:
        return
    if state.performance.runs:
        terminalreporter.section("k2 e2e performance")
        for line in state.performance.summary_lines():
            terminalreporter.write_line(line)
    rows = state.rows()
    if not rows and not state.bundles and not state.notes:
        return
    terminalreporter.section("k2 e2e stack")
    for line in [*format_table(rows), *state.notes]:
        terminalreporter.write_line(line)
    if state.bundles:
        terminalreporter.write_line(
            f"failure bundles: {len(state.bundles)} under {state.options.artifacts / 'failures'}"
        )
    elif rows:
        terminalreporter.write_line(f"artifacts: {state.options.artifacts}")
