"""Starting a created container as soon as what it waits on is ready (e2e_stack.headstart)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from e2e_stack.asking import EXEC_ASK_EVERY_S, ExecAsk, exec_asks, exec_healthcheck
from e2e_stack.engine import EngineError
from e2e_stack.headstart import Headstart
from e2e_stack.manager import starts_all
from e2e_stack.readiness import ContainerState, strategies
from e2e_stack.waiting import wait_until_ready
from tests.unit.clocks import ManualClock

PG_CHECK = ["CMD-SHELL", 'pg_isready -q -h 127.0.0.1 -U "$POSTGRES_USER"']
HTTP_CHECK = ["CMD", "curl", "-fsS", "http://127.0.0.1:8080/"]

# K2's minimal profile in shape: a registry waits on a healthy database; a catalog waits on
# the database and on a one-shot that waits on a healthy object store.
MODEL: dict[str, Any] = {
    "services": {
        "postgres": {"healthcheck": {"test": PG_CHECK}},
        "minio": {"healthcheck": {"test": HTTP_CHECK}},
        "minio-init": {"depends_on": {"minio": {"condition": "service_healthy"}}},
        "registry": {
            "healthcheck": {"test": HTTP_CHECK},
            "depends_on": {"postgres": {"condition": "service_healthy"}},
        },
        "catalog": {
            "healthcheck": {"test": HTTP_CHECK},
            "depends_on": {
                "postgres": {"condition": "service_healthy"},
                "minio-init": {"condition": "service_completed_successfully"},
            },
        },
        "sidecar": {"depends_on": {"minio": {"condition": "service_started"}}},
    }
}


def _state(service: str, status: str, health: str | None = None) -> ContainerState:
    return ContainerState(service, f"id-{service}", status, health)


def _created(*services: str) -> dict[str, ContainerState]:
    return {service: _state(service, "created") for service in services}


class _Starter:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, containers: Sequence[str]) -> None:
        self.calls.append(list(containers))
        if self.fail:
            raise EngineError("port is already allocated")


def test_a_created_service_starts_once_its_healthy_dependency_is_ready() -> None:
    start = _Starter()
    headstart = Headstart(MODEL, {}, start=start)
    states = {"postgres": _state("postgres", "running", "starting"), **_created("registry")}
    assert headstart.start_due(states, ready=set()) == []
    assert headstart.start_due(_created("registry"), ready={"postgres"}) == ["registry"]
    assert start.calls == [["id-registry"]]
    assert headstart.start_due(_created("registry"), ready={"postgres"}) == []
    assert headstart.started == ["registry"]


def test_every_condition_must_hold_and_a_started_dependency_only_has_to_run() -> None:
    start = _Starter()
    headstart = Headstart(MODEL, {}, start=start)
    catalog = _created("catalog", "sidecar")
    catalog["minio"] = _state("minio", "running", "starting")
    assert headstart.start_due(catalog, ready={"postgres"}) == ["sidecar"]
    assert headstart.start_due(_created("catalog"), ready={"postgres", "minio-init"}) == ["catalog"]


def test_independent_services_start_at_once_the_most_awaited_first() -> None:
    start = _Starter()
    model = {"services": {k: v for k, v in MODEL["services"].items() if k != "sidecar"}}
    headstart = Headstart(model, {}, start=start)  # postgres: two direct waiters, minio one
    states = _created("minio", "postgres", "minio-init", "registry")
    assert headstart.start_due(states, ready=set()) == ["postgres", "minio"]
    assert start.calls == [["id-postgres", "id-minio"]]


def test_a_one_shot_is_left_to_compose_which_would_run_it_again() -> None:
    headstart = Headstart(MODEL, {}, start=_Starter())
    assert headstart.start_due(_created("minio-init"), ready={"minio"}) == []


def test_a_healthy_condition_on_a_service_without_healthcheck_is_left_to_compose() -> None:
    model = {
        "services": {
            "db": {},
            "app": {"depends_on": {"db": {"condition": "service_healthy"}}},
        }
    }
    headstart = Headstart(model, {}, start=_Starter())
    assert headstart.start_due(_created("app"), ready={"db"}) == []


def test_without_a_starter_nothing_is_started_and_nothing_is_execd() -> None:
    def costly(_state: ContainerState) -> bool:
        raise AssertionError("exec'd without a start to gain")

    headstart = Headstart(MODEL, {}, {"postgres": costly}, start=None)
    states = {"postgres": _state("postgres", "running", "starting"), **_created("registry")}
    assert headstart.start_due(states, ready=set()) == []
    assert headstart.asks_now(states, ready=set()) == {}


def test_a_failed_start_is_left_for_compose_to_report() -> None:
    start = _Starter(fail=True)
    headstart = Headstart(MODEL, {}, start=start)
    assert headstart.start_due(_created("registry"), ready={"postgres"}) == []
    assert headstart.started == []


def test_exec_asks_only_the_one_thing_a_created_service_still_waits_for() -> None:
    def cheap(_state: ContainerState) -> bool:
        return False

    def costly(_state: ContainerState) -> bool:
        return False

    headstart = Headstart(
        MODEL, {"minio": cheap}, {"postgres": costly, "minio": costly}, start=_Starter()
    )
    starting = {
        "postgres": _state("postgres", "running", "starting"),
        "minio": _state("minio", "running", "starting"),
    }
    # The registry waits on postgres alone: postgres is exec'd; minio is asked over HTTP.
    asks = headstart.asks_now({**starting, **_created("registry")}, ready=set())
    assert asks == {"postgres": costly, "minio": cheap}
    # The catalog waits on postgres and on the one-shot: not worth an exec yet.
    asks = headstart.asks_now({**starting, **_created("catalog", "minio-init")}, ready=set())
    assert asks == {"minio": cheap}
    # Nothing is asked of a service the engine has judged already, or that is not running.
    judged = {"postgres": _state("postgres", "running", "healthy"), **_created("registry")}
    assert headstart.asks_now(judged, ready=set()) == {}


class _Stack:
    """An engine whose containers follow `docker start`; healthchecks never pass on their own."""

    def __init__(self) -> None:
        self.states = {
            "postgres": _state("postgres", "running", "starting"),
            "registry": _state("registry", "created"),
        }
        self.looks = 0

    def observe(self, services: Sequence[str]) -> dict[str, ContainerState]:
        self.looks += 1
        return {service: self.states[service] for service in services}

    def start(self, containers: Sequence[str]) -> None:
        for service, state in self.states.items():
            if state.container in containers:
                self.states[service] = _state(service, "running", "starting")


def test_the_wait_starts_a_dependent_when_an_ask_answers_and_ends_when_it_answers() -> None:
    model = {
        "services": {k: v for k, v in MODEL["services"].items() if k in ("postgres", "registry")}
    }
    clock = ManualClock()
    stack = _Stack()
    answers = {"postgres": iter([False, True]), "registry": iter([False, False, True])}
    headstart = Headstart(
        model,
        {"registry": lambda _s: next(answers["registry"])},
        {"postgres": lambda _s: next(answers["postgres"])},
        start=stack.start,
    )
    report = wait_until_ready(
        stack,  # type: ignore[arg-type]
        strategies(model),
        {"postgres": 60.0, "registry": 60.0},
        clock=clock,
        sleep=clock.sleep,
        headstart=headstart,
        nap=clock.sleep,
    )
    assert headstart.started == ["registry"]
    assert report.ready_after_s["postgres"] < report.ready_after_s["registry"]
    assert stack.states["registry"].health == "starting", "the engine never said healthy"


def test_exec_healthcheck_runs_the_checks_own_command() -> None:
    assert exec_healthcheck(["CMD", "kafka-ready"]) == ("kafka-ready",)
    assert exec_healthcheck(PG_CHECK) == ("/bin/sh", "-c", PG_CHECK[1])
    assert exec_healthcheck(["NONE"]) is None
    assert exec_healthcheck(["CMD-SHELL", "a", "b"]) is None
    model = {"services": {"pg": {"healthcheck": {"test": PG_CHECK}}, "plain": {}}}
    assert set(exec_asks(model, lambda *_: True)) == {"pg"}


def test_an_execd_check_is_paced_and_needs_a_running_container() -> None:
    clock = ManualClock()
    runs: list[tuple[str, tuple[str, ...]]] = []

    def check_in(container: str, argv: Sequence[str], _timeout: float) -> bool:
        runs.append((container, tuple(argv)))
        return False

    ask = ExecAsk(("pg_isready",), check_in, clock)
    running = _state("postgres", "running", "starting")
    assert not ask(running)
    assert not ask(running)
    clock.sleep(EXEC_ASK_EVERY_S)
    assert not ask(running)
    assert not ask(_state("postgres", "exited"))
    assert runs == [("id-postgres", ("pg_isready",))] * 2


@pytest.mark.parametrize(
    ("setup", "starts"),
    [
        (["up -d"], True),
        (["up --detach --wait"], True),
        (["up -d --no-start"], False),
        (["create", "start"], False),
        (["up -d --no-deps registry"], False),
    ],
)
def test_only_a_plain_up_lets_the_headstart_start_containers(
    setup: list[str], starts: bool
) -> None:
    assert starts_all(setup) is starts
