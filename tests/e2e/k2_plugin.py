"""K2's additions to the e2e_stack plugin: the freshness SLO, the performance report, Kafka's port.

Registered from the repository's root `conftest.py`, so `--e2e-freshness-slo` exists whatever
path pytest is given. The stack itself (start, waits, bundles, sweep) is the e2e_stack
plugin's, configured in pyproject.toml.
"""

from __future__ import annotations

import functools
import json
import os
import tomllib
from pathlib import Path
from typing import Any, Final

import pytest

from e2e_stack.settings import Settings, SettingsError
from e2e_stack.state import run_state
from tests.e2e.utils.performance_monitor import JSON_NAME, PLOT_NAME, PerformanceMonitor

KAFKA_PORT_VARIABLE: Final = "K2_KAFKA_HOST_PORT"
PUBLISH_ADDRESS_VARIABLE: Final = "K2_PUBLISH_ADDRESS"
LOOPBACK: Final = "127.0.0.1"
DEFAULT_FRESHNESS_SLO_S: Final = 5.0
SLO_FLAG: Final = "--e2e-freshness-slo"
SLO_INI: Final = "e2e_freshness_slo"
SLO_ENV: Final = "K2_E2E_FRESHNESS_SLO_S"
_PERFORMANCE_KEY: Final = "k2_e2e_performance"
_FAULT_MATRIX_KEY: Final = "k2_e2e_fault_matrix"
FAULT_MATRIX_JSON: Final = "fault-matrix.json"
PERFORMANCE = pytest.StashKey[PerformanceMonitor]()
FAULT_MATRIX = pytest.StashKey[list[dict[str, Any]]]()
"""One row per fault-matrix case: the fault, recovery time, trades acked/stored/missing/twice."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """--e2e-freshness-slo (ini e2e_freshness_slo, env K2_E2E_FRESHNESS_SLO_S)."""
    text = (
        "freshness SLO in seconds: p99 of sent-to-served must stay within it "
        f"(default {DEFAULT_FRESHNESS_SLO_S:g})"
    )
    parser.getgroup("k2-e2e", "K2 end-to-end checks").addoption(
        SLO_FLAG, default=None, dest="e2e_freshness_slo", help=f"{text} [env {SLO_ENV}]"
    )
    parser.addini(SLO_INI, text, default="")


def freshness_slo(flag: str | None, env: dict[str, str], ini: str) -> float:
    """Flag, then environment, then ini, then 5 s; one line for a bad value."""
    text = flag if flag is not None else env.get(SLO_ENV, ini or None)
    try:
        slo = float(text) if text not in (None, "") else DEFAULT_FRESHNESS_SLO_S
    except ValueError:
        slo = -1.0
    if not 0 < slo < float("inf"):
        raise SettingsError(
            f"{SLO_FLAG} {text!r} is not a positive number of seconds (e.g. 3 or 2.5)"
        )
    return slo


class _XdistController:
    """Collect every worker's measured runs into the controller's report."""

    def __init__(self, monitor: PerformanceMonitor, matrix: list[dict[str, Any]]) -> None:
        self._monitor = monitor
        self._matrix = matrix

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Take over the runs a worker measured and its fault-matrix rows."""
        output = getattr(node, "workeroutput", {})
        self._monitor.extend_from_json(output.get(_PERFORMANCE_KEY, []))
        self._matrix += output.get(_FAULT_MATRIX_KEY, [])


def pytest_configure(config: pytest.Config) -> None:
    """The session's performance monitor, with the SLO resolved once."""
    slo = freshness_slo(
        config.getoption("e2e_freshness_slo"), dict(os.environ), str(config.getini(SLO_INI))
    )
    monitor = PerformanceMonitor(slo)
    config.stash[PERFORMANCE] = monitor
    matrix: list[dict[str, Any]] = []
    config.stash[FAULT_MATRIX] = matrix
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistController(monitor, matrix), "k2-e2e-xdist")


def pytest_collection_finish(session: pytest.Session) -> None:
    """An E2E run removes the previous run's performance report (no stale figures)."""
    if any(item.get_closest_marker("e2e") for item in session.items):
        artifacts = run_state(session.config).settings.artifacts
        for name in (JSON_NAME, PLOT_NAME, FAULT_MATRIX_JSON):
            (artifacts / name).unlink(missing_ok=True)


REPO_ROOT: Final = Path(__file__).resolve().parents[2]


@functools.cache
def plugin_ini() -> dict[str, Any]:
    """The e2e_stack settings pyproject.toml gives K2, for stacks started outside pytest."""
    document = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    ini: dict[str, Any] = document["tool"]["pytest"]["ini_options"]
    return ini


def stack_variables(publish_address: str) -> dict[str, str]:
    """What K2's compose files need to know before `up`: where ports go, and Kafka's port.

    Kafka advertises its host listener, so the address and port clients use must be chosen
    before it starts: a free port per stack. One pinned in the environment wins (compose
    reads the process environment first). The port is checked free on the publish address
    when this machine can bind it (a loopback one); a remote host's ports cannot be checked
    from here, and there a collision fails `up` with Docker's own message.
    """
    from e2e_stack import free_port
    from e2e_stack.preflight import is_own_address

    variables = {PUBLISH_ADDRESS_VARIABLE: publish_address}
    if not os.environ.get(KAFKA_PORT_VARIABLE):
        host = publish_address if is_own_address(publish_address) else LOOPBACK
        variables[KAFKA_PORT_VARIABLE] = str(free_port(host))
    return variables


@pytest.hookimpl
def pytest_e2e_stack_environment(
    settings: Settings, project_name: str, publish_address: str
) -> dict[str, str]:
    """Each run's stack: published on the session's address, with its own Kafka host port."""
    return stack_variables(publish_address)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Workers hand their runs to the controller; the controller (or a plain run) writes them."""
    monitor = session.config.stash.get(PERFORMANCE, None)
    if monitor is None:
        return
    matrix = session.config.stash[FAULT_MATRIX]
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[_PERFORMANCE_KEY] = [run.to_json() for run in monitor.runs]
        workeroutput[_FAULT_MATRIX_KEY] = matrix
        return
    state = run_state(session.config)
    state.findings.notes += [
        f"performance report: {path}" for path in monitor.write(state.settings.artifacts)
    ]
    if matrix:
        path = state.settings.artifacts / FAULT_MATRIX_JSON
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(matrix, indent=2) + "\n")
        state.findings.notes.append(f"fault matrix: {path}")


def fault_matrix_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The fault table: one line per fault, seconds, trade counts, when health said not-ready.

    `unready s`: seconds after the fault began until consumer-crypto / k2-query-api answered
    not-ready ('-': they stayed ready). `renewed`: how often the feed replaced a Kafka client
    librdkafka left stuck (k2.feed.renewal); not 0 means the client bug struck, and was cured.
    """
    width = max([len("fault"), *(len(str(row["fault"])) for row in rows)])
    header = (
        f"{'fault':<{width}} {'out s':>6} {'complete s':>10} {'acked':>6} {'stored':>6} "
        f"{'missing':>7} {'twice':>5} {'unready s (consumer/api)':>24} {'renewed':>7}"
    )
    return [header] + [
        f"{row['fault']:<{width}} {row['outage_s']:>6.1f} {row['complete_after_s']:>10.1f} "
        f"{row['acknowledged']:>6} {row['stored']:>6} {row['missing']:>7} {row['duplicated']:>5} "
        f"{_unready(row):>24} {len(row.get('feed_renewals') or []):>7}"
        for row in rows
    ]


def _unready(row: dict[str, Any]) -> str:
    seen = row.get("unready_after_s") or {}
    return "/".join("-" if value is None else f"{value:.1f}" for value in seen.values())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The measured runs and the fault matrix, one line each."""
    monitor = config.stash.get(PERFORMANCE, None)
    if monitor is not None and monitor.runs:
        terminalreporter.section("k2 e2e performance")
        for line in monitor.summary_lines():
            terminalreporter.write_line(line)
    matrix = config.stash.get(FAULT_MATRIX, None)
    if matrix:
        terminalreporter.section("k2 e2e fault matrix")
        for line in fault_matrix_lines(matrix):
            terminalreporter.write_line(line)
