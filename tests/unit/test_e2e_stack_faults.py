"""Faults restore the service whatever happens, wait for the stack, and record a timeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from e2e_stack.engine import EngineError
from e2e_stack.faults import FREEZE_ATTEMPTS, Faults, format_rows
from e2e_stack.manager import StackManager
from tests.e2e.k2_plugin import fault_matrix_lines


class _Engine:
    def __init__(self, log: list[str], fail_on: str = "", files: str = "") -> None:
        self.log = log
        self.fail_on = fail_on
        self.files = files

    def __getattr__(self, name: str) -> Any:
        def call(service: str, *args: Any) -> list[str]:
            if name == self.fail_on:
                raise RuntimeError(f"{name} refused\nmore detail")
            self.log.append(f"{name} {service}{self.files}")
            return ["net-a"] if name == "disconnect" else []

        return call


class _Project:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.config: dict[str, Any] = {"services": {"db": {}, "app": {}}}
        self.overlays: list[dict[str, Any]] = []

    def with_overlay(self, path: Path) -> _Project:
        self.overlays.append(json.loads(path.read_text()))
        return _Project(_Engine(self.engine.log, files=" +overlay"))


class _Manager:
    def __init__(self, fail_on: str = "") -> None:
        self.log: list[str] = []
        self.project = _Project(_Engine(self.log, fail_on))
        self.active_profile = "all"

    def wait_recovered(self, since: float) -> None:
        self.log.append("wait")


def _faults(manager: _Manager) -> Faults:
    ticks = iter(float(n) for n in range(100))
    return Faults(cast(StackManager, manager), clock=lambda: next(ticks))


def test_a_fault_breaks_then_restores_and_waits_for_the_stack() -> None:
    manager = _Manager()
    faults = _faults(manager)
    with faults.stopped("db") as record:
        assert manager.log == ["stop db"]
    assert manager.log == ["stop db", "start db", "wait"]
    assert (record.began, record.ended, record.ready_again) == (0.0, 1.0, 2.0)
    assert faults.lines() == ["stop db: 0.0 s -> 1.0 s, stack ready again at 2.0 s"]


def test_the_service_is_restored_when_the_test_fails_inside() -> None:
    manager = _Manager()
    with pytest.raises(AssertionError), _faults(manager).paused("app"):
        raise AssertionError("the test failed")
    assert manager.log == ["pause app", "unpause app", "wait"]


def test_a_disconnected_service_goes_back_on_the_networks_it_left() -> None:
    manager = _Manager()
    with _faults(manager).disconnected("app"):
        pass
    assert manager.log == ["disconnect app", "reconnect app", "wait"]


def test_a_reconfigured_service_runs_with_the_override_then_as_the_files_say() -> None:
    manager = _Manager()
    with _faults(manager).reconfigured("app", {"LIMIT": "2"}) as record:
        assert manager.log == ["recreate app +overlay"]
    assert manager.project.overlays == [{"services": {"app": {"environment": {"LIMIT": "2"}}}}]
    assert manager.log == ["recreate app +overlay", "recreate app", "wait"]
    assert record.kind == "reconfigure"


def test_a_failed_restore_is_raised_and_recorded() -> None:
    manager = _Manager(fail_on="start")
    faults = _faults(manager)
    with pytest.raises(RuntimeError, match="start refused"), faults.killed("db"):
        pass
    assert faults.records[0].error == "start refused"
    assert "restore failed: start refused" in faults.lines()[0]


def test_unknown_services_are_refused_before_anything_breaks() -> None:
    manager = _Manager()
    with (
        pytest.raises(KeyError, match="'cache' is not a service"),
        _faults(manager).killed("cache"),
    ):
        pass
    assert manager.log == []


def test_fault_rows_and_the_summary_table() -> None:
    manager = _Manager()
    faults = _faults(manager)
    with faults.stopped("db"):
        pass
    rows = faults.rows("tests/x.py::test_outage")
    assert rows == [
        {
            "test": "tests/x.py::test_outage",
            "fault": "stop",
            "service": "db",
            "fault_s": 1.0,
            "recovery_s": 1.0,
            "error": None,
        }
    ]
    table = format_rows([*rows, {**rows[0], "error": "start refused", "recovery_s": None}])
    assert table[0].split() == ["test", "fault", "service", "out", "s", "recovery", "s"]
    assert table[1].split() == ["test_outage", "stop", "db", "1.0", "1.0"]
    assert table[2].split()[-1] == "FAILED"
    assert format_rows([]) == []


def test_the_k2_fault_table_shows_whole_fault_names() -> None:
    row = {
        "fault": "stopped-kafka-past-K2_KAFKA_LOST_S",
        "outage_s": 22.1,
        "complete_after_s": 13.5,
        "acknowledged": 5200,
        "stored": 5200,
        "missing": 0,
        "duplicated": 0,
        "unready_after_s": {"consumer-crypto": 7.2, "k2-query-api": None},
        "feed_renewals": [{"stalled_s": 10.4, "resent": 600}],
    }
    header, line = fault_matrix_lines([row])
    assert line.startswith("stopped-kafka-past-K2_KAFKA_LOST_S  ")
    assert line.split() == [row["fault"], "22.1", "13.5", "5200", "5200", "0", "0", "7.2/-", "1"]
    assert header.index("out s") == line.index("22.1") + len("22.1") - len("out s")


class _Freezer(_Engine):
    """An engine whose runtime cannot finish the first `refusals` freezes."""

    def __init__(self, log: list[str], refusals: int, why: str = "unable to freeze") -> None:
        super().__init__(log)
        self.refusals = refusals
        self.why = why

    def pause(self, service: str) -> None:
        self.log.append(f"pause {service}")
        if self.refusals:
            self.refusals -= 1
            raise EngineError(f"Cannot pause container: OCI runtime pause failed: {self.why}")


def test_a_freeze_the_runtime_could_not_finish_is_tried_again() -> None:
    manager = _Manager()
    manager.project.engine = _Freezer(manager.log, refusals=FREEZE_ATTEMPTS - 1)
    with _faults(manager).paused("app"):
        pass
    assert manager.log == ["pause app"] * FREEZE_ATTEMPTS + ["unpause app", "wait"]


def test_a_freeze_refused_every_time_or_for_another_reason_fails_the_fault() -> None:
    for engine_refusals, why, tries in (
        (FREEZE_ATTEMPTS, "unable to freeze", FREEZE_ATTEMPTS),
        (1, "container is not running", 1),
    ):
        manager = _Manager()
        manager.project.engine = _Freezer(manager.log, engine_refusals, why)
        with pytest.raises(EngineError, match=why), _faults(manager).paused("app"):
            pass
        assert manager.log == ["pause app"] * tries
