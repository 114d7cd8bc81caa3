"""The pytest plugin (entry point `e2e_stack`): settings, run identity, bundles, summary.

Loads with every pytest run, unit runs included, so it imports only pytest and the standard
library here; the Docker libraries load with the fixtures, when a stack is used. The fixtures
are in `e2e_stack.fixtures`, registered at configure time so that they come after
pytest-docker's and override its defaults.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any, Final

import pytest

from e2e_stack import hookspecs
from e2e_stack.faults import format_rows as format_faults
from e2e_stack.identity import RunIdentity
from e2e_stack.settings import OPTIONS, Settings, add_options, engine_for
from e2e_stack.signals import interrupt_on_sigterm, wait_for_signalled
from e2e_stack.state import CONTROL_FIXTURE, FAULTS, STATE, RunState
from e2e_stack.state import uses_stack as _uses_stack
from e2e_stack.summary import ServiceRow, format_table, rows_for
from e2e_stack.target import Target

OPERATIONAL_MARKER: Final = "operational"
"""Marks a test that is safe against a deployment: it only reads and writes its own data."""
_RUN_ID_KEY: Final = "e2e_stack_run_id"
_SUMMARY_KEY: Final = "e2e_stack_summary"
_FAULTS_KEY: Final = "e2e_stack_faults"
_DESELECTED_KEY: Final = "e2e_stack_deselected"
FAULTS_JSON: Final = "faults.json"
_STARTED = pytest.StashKey[datetime]()
SIGNALLED_DEADLINE_S: Final = 120.0
"""How long the controller waits, after SIGTERM, for its workers and their sessions to end."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """The hooks a project implements (see e2e_stack.hookspecs)."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The --e2e-* options and their ini keys."""
    add_options(parser)


class _XdistController:
    """Hooks that exist only when pytest-xdist is active, on the controller."""

    def __init__(self, state: RunState) -> None:
        self._state = state

    def pytest_configure_node(self, node: Any) -> None:
        """Every worker's stack carries the controller's run id."""
        node.workerinput[_RUN_ID_KEY] = self._state.identity.run_id

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Remove what workers left: one stopped by a signal may not have torn down its stack.

        Runs after xdist has shut every worker down, on each engine they may have used.
        """
        from e2e_stack.engine import Engine, EngineError  # Docker libraries: only now
        from e2e_stack.sweep import remove_run

        settings = self._state.settings
        if getattr(config.option, "dist", "no") == "no" or settings.target is not None:
            return  # No workers ran, or they ran against a target: nothing of ours to remove.
        still = wait_for_signalled(SIGNALLED_DEADLINE_S)
        if still:
            print(
                f"e2e-stack: processes {still} of this run still run "
                f"{SIGNALLED_DEADLINE_S:.0f} s after SIGTERM; their stacks go to the next sweep",
                flush=True,
            )
        endpoints: list[str | None] = [choice.endpoint for choice in settings.engines] or [None]
        for endpoint in endpoints:
            client = ("docker",) if endpoint is None else ("docker", "--host", endpoint)
            try:
                left = remove_run(
                    Engine(client),
                    self._state.identity.run_id,
                    settings.project_prefix,
                    self._state.keys,
                )
            except EngineError:
                # No Docker here (a unit run under xdist), or the engine is gone: whatever
                # is left carries a dead owner's labels, and the next run's sweep takes it.
                continue
            for project in left:
                print(f"e2e-stack: removed worker stack {project} left after the run", flush=True)

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Collect each worker's summary rows."""
        output = getattr(node, "workeroutput", {})
        for row in output.get(_SUMMARY_KEY, []):
            self._state.findings.worker_rows.append(ServiceRow(**row))
        self._state.findings.faults += output.get(_FAULTS_KEY, [])
        # Every worker collects the same tests: the first to finish tells why some were left.
        if not self._state.findings.deselected:
            self._state.findings.deselected.update(output.get(_DESELECTED_KEY, {}))


def pytest_configure(config: pytest.Config) -> None:
    """Resolve settings once (a bad value stops pytest with one line) and name this run."""
    _refuse_option_value_read_as_a_test_path(config)
    settings = Settings.from_config(config)
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    worker = workerinput.get("workerid")
    settings = _on_own_engine(settings, worker)
    identity = RunIdentity.current(workerinput.get(_RUN_ID_KEY))
    state = RunState(settings, identity, worker)
    if settings.target is not None:
        # Read now: a bad file stops pytest with one line, before anything is collected.
        state.target = Target.load(settings.target, os.environ)
    config.stash[STATE] = state
    config.addinivalue_line(
        "markers",
        f"{OPERATIONAL_MARKER}: safe against a running deployment (--e2e-target): reads "
        "and writes only its own data, never controls containers",
    )
    from e2e_stack import fixtures

    config.pluginmanager.register(fixtures, "e2e-stack-fixtures")
    if state.worker is None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(state), "e2e-stack-xdist")
        # The controller starts no stack, but a `kill -TERM` of it must still reach its
        # teardown, which shuts the workers down and removes what they leave; the workers
        # get the signal too, so that each stops its test and tears its stack down now.
        interrupt_on_sigterm(forward=True)
    elif state.worker is not None:
        interrupt_on_sigterm()  # Before any test: a nested session's test has no stack.


def _refuse_option_value_read_as_a_test_path(config: pytest.Config) -> None:
    """Stop a run where pytest took the value of a separate-word --e2e-* option for a test path.

    pytest finds its rootdir and ini file before plugins add their options, so an existing
    path after a separate `--e2e-target` (or `--e2e-artifacts`, ...) counts as a test path
    then: outside the project, the project's ini (markers, addopts, these settings) is never
    read. `--e2e-target=FILE` has no such problem.
    """
    here = config.invocation_params.dir.resolve()
    if config.inipath is not None and here.is_relative_to(config.rootpath.resolve()):
        return  # the project's configuration was found: nothing was lost
    args = list(config.invocation_params.args)
    flags = {option.flag for option in OPTIONS.values() if not option.is_flag}
    for flag, value in itertools.pairwise(args):
        if flag in flags and (here / value).exists():
            raise pytest.UsageError(
                f"write {flag}={value} (with '='): as a separate word pytest also took "
                f"{value} for a test path and looked for its configuration there"
            )


def _on_own_engine(settings: Settings, worker: str | None) -> Settings:
    """Point this process at its engine of --e2e-engines (the docker CLI reads DOCKER_HOST).

    Every Docker call of this process, the plugin's and the tests' alike, goes to that
    engine from here on; its stacks publish on the address the entry names, or on the one
    its endpoint implies. A pytest session a worker starts (a test of the plugin itself)
    inherits the worker's one engine, not the list, whose first entry may be another; the
    controller keeps the list, which its workers inherit.
    """
    choice = engine_for(worker, settings.engines)
    if choice is None:
        return settings
    os.environ.pop("DOCKER_CONTEXT", None)
    os.environ["DOCKER_HOST"] = choice.endpoint
    if worker is not None:
        os.environ[settings.env_name("ENGINES")] = str(choice)
    return dataclasses.replace(settings, publish_address=choice.publish_address)


def uses_stack(item: pytest.Item) -> bool:
    """Whether a test needs the stack (directly or through another fixture)."""
    return _uses_stack(getattr(item, "fixturenames", ()))


def target_verdict(item: pytest.Item) -> str | None:
    """Why a test may not run against an external target; None if it may.

    Only tests marked operational run against a deployment: a test that does not say it is
    safe there is not assumed to be (it may start stacks of its own, or break services).
    One that is marked but reaches `stack_manager` through its fixtures is a mistake in the
    suite, reported as such.
    """
    names = getattr(item, "fixturenames", ())
    marked = item.get_closest_marker(OPERATIONAL_MARKER) is not None
    controls = CONTROL_FIXTURE in names
    if marked and controls:
        raise pytest.UsageError(
            f"{item.nodeid} is marked {OPERATIONAL_MARKER} but its fixtures reach "
            f"{CONTROL_FIXTURE}, which controls containers: give it the target's fixtures "
            "or remove the mark"
        )
    if controls:
        return "needs control of the stack's containers"
    if not marked:
        return f"not marked {OPERATIONAL_MARKER} (not known to be safe against a deployment)"
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against an external target, run only what is safe there; say why the rest is not."""
    state = config.stash.get(STATE, None)
    if state is None or state.target is None:
        return
    kept: list[pytest.Item] = []
    left: list[pytest.Item] = []
    for item in items:
        reason = target_verdict(item)
        if reason is None:
            kept.append(item)
        else:
            left.append(item)
            state.findings.deselected.setdefault(reason, []).append(item.nodeid)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


def pytest_collection_finish(session: pytest.Session) -> None:
    """When this run uses a stack, remove what an earlier run left in the artifacts.

    Safe under xdist: no worker runs a test before every worker has collected. Only the
    plugin's own names go; the directory may be shared with other tools.
    """
    if not any(uses_stack(item) for item in session.items):
        return
    artifacts = session.config.stash[STATE].settings.artifacts
    shutil.rmtree(artifacts / "failures", ignore_errors=True)
    for summary in artifacts.glob("stack-summary-*.json"):
        summary.unlink(missing_ok=True)
    (artifacts / FAULTS_JSON).unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Remember when the test began: its failure bundle shows logs from then on."""
    item.stash[_STARTED] = datetime.now(UTC)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the failure bundle to every failed test (or failed setup) that used the stack."""
    report = yield
    state = item.config.stash.get(STATE, None)
    if (
        report.failed
        and state is not None
        and state.manager is not None
        and uses_stack(item)
        and report.when in ("setup", "call")
    ):
        _attach_bundle(state, item, report)
    return report


def _attach_bundle(state: RunState, item: pytest.Item, report: pytest.TestReport) -> None:
    from e2e_stack import bundles

    manager = state.manager
    assert manager is not None
    findings = state.findings
    if report.when == "setup" and manager.failure is not None and findings.setup_bundle:
        # The stack failed once; every later test's setup error points at the same bundle.
        report.sections.append(("e2e-stack bundle", f"see {findings.setup_bundle}"))
        return
    since = item.stash.get(_STARTED, datetime.now(UTC))
    if report.when == "setup" and manager.failure is not None:
        since = datetime.fromtimestamp(state.identity.started_at, UTC)
    services = sorted(manager.project.everything()["services"])
    sections = bundles.collect(manager.project.engine, services, since, state.redactor)
    faults = item.stash.get(FAULTS, None)
    if faults is not None and faults.records:
        sections.insert(0, bundles.Section("faults", "\n".join(faults.lines())))
    directory = bundles.write(
        sections,
        bundles.bundle_dir(state.settings.artifacts, item.nodeid),
        header=f"{item.nodeid} failed in {report.when} (stack {manager.project.name})",
    )
    findings.bundles.append(directory)
    if report.when == "setup" and manager.failure is not None:
        findings.setup_bundle = directory
    for section in sections:
        report.sections.append((f"e2e-stack {section.title}", section.body))
    report.sections.append(("e2e-stack bundle", f"written to {directory}"))


def _rows(state: RunState) -> list[ServiceRow]:
    """Summary rows of this process's stack plus those reported by xdist workers."""
    rows = list(state.findings.worker_rows)
    if state.manager is not None:
        peaks = {
            name: (peak.cpu_percent, peak.memory_mib)
            for name, peak in (state.sampler.peaks if state.sampler else {}).items()
        }
        rows += rows_for(state.manager.project.name, state.manager.timings.ready_after_s, peaks)
    return rows


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Safety net: the stack goes down even if fixture teardown never ran (Ctrl-C in setup)."""
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    if state.sampler is not None:
        state.sampler.stop()
    if state.manager is not None:
        state.manager.stop_now()
    rows = _rows(state)
    if rows:
        summary = state.settings.artifacts / f"stack-summary-{state.worker or 'main'}.json"
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps([row.to_json() for row in rows], indent=2) + "\n")
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_SUMMARY_KEY] = [row.to_json() for row in rows]
        workeroutput[_FAULTS_KEY] = state.findings.faults
        workeroutput[_DESELECTED_KEY] = state.findings.deselected
    elif state.findings.faults:
        path = state.settings.artifacts / FAULTS_JSON
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state.findings.faults, indent=2) + "\n")
        state.findings.notes.append(f"fault timeline: {path}")


def _target_summary(terminalreporter: Any, state: RunState) -> None:
    """What ran against the external target, and each deselected test with its reason."""
    assert state.target is not None
    terminalreporter.section("e2e target")
    terminalreporter.write_line(
        f"external target {state.target.path}: nothing was started, stopped or removed"
    )
    for reason, nodeids in state.findings.deselected.items():
        terminalreporter.write_line(f"deselected, {reason}: {len(nodeids)}")
        for nodeid in nodeids:
            terminalreporter.write_line(f"  {nodeid}")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Per-service ready time and peak CPU/memory, and where the artifacts are."""
    state = config.stash.get(STATE, None)
    if state is None:
        return
    rows = _rows(state)
    findings = state.findings
    if state.target is not None and state.worker is None:
        _target_summary(terminalreporter, state)
    if not rows and not findings.bundles and not findings.notes and not findings.faults:
        return
    terminalreporter.section("e2e stack")
    for line in [*format_table(rows), *format_faults(findings.faults), *findings.notes]:
        terminalreporter.write_line(line)
    if findings.bundles:
        where = state.settings.artifacts / "failures"
        terminalreporter.write_line(f"failure bundles: {len(findings.bundles)} under {where}")
    elif rows:
        terminalreporter.write_line(f"artifacts: {state.settings.artifacts}")
