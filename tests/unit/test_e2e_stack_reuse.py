"""`--e2e-reuse`'s look at a kept stack: adopted only when every active service is ready."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from e2e_stack.project import ComposeCommand, ComposeProject
from e2e_stack.readiness import ContainerState
from e2e_stack.reuse import ready_states

EVERYTHING: dict[str, Any] = {
    "services": {
        "kafka": {
            "image": "k/kafka",
            "healthcheck": {"test": ["CMD", "true"]},
            "depends_on": {"init": {"condition": "service_completed_successfully"}},
        },
        "init": {"image": "k/init"},
        "app": {
            "image": "k/app",
            "profiles": ["full"],
            "healthcheck": {"test": ["CMD", "true"]},
        },
    }
}


class FakeEngine:
    """Answers `observe` from fixed states, after an optional gate opens."""

    def __init__(
        self, states: dict[str, ContainerState], gate: threading.Event | None = None
    ) -> None:
        self._states = states
        self._gate = gate
        self.observed: list[list[str]] = []
        self.started = threading.Event()

    def observe(self, services: Iterable[str]) -> dict[str, ContainerState]:
        names = list(services)
        self.observed.append(names)
        self.started.set()
        if self._gate is not None:
            assert self._gate.wait(5), "the project's model was never resolved"
        absent = {name: ContainerState(name, "", "absent", None) for name in names}
        return absent | {n: s for n, s in self._states.items() if n in names}


def _project(profiles: tuple[str, ...], engine: FakeEngine, model: Any) -> ComposeProject:
    project = ComposeProject(
        command=ComposeCommand(("docker",), (), (), None),
        files=(Path("compose.yml"),),
        name="p",
        profiles=profiles,
        all_profiles_model=EVERYTHING,
    )
    # Both are cached properties: primed, no docker call is made.
    project.__dict__["engine"] = engine
    project.__dict__["config"] = model
    return project


def _model(profiles: tuple[str, ...]) -> dict[str, Any]:
    return {
        "services": {
            name: spec
            for name, spec in EVERYTHING["services"].items()
            if not spec.get("profiles") or set(spec["profiles"]) & set(profiles)
        }
    }


def healthy(name: str) -> ContainerState:
    return ContainerState(name, "c-" + name, "running", "healthy", published={9092: 32001})


DONE = ContainerState("init", "c-init", "exited", None, exit_code=0)


def test_a_stack_whose_every_active_service_is_ready_is_adopted_with_its_states() -> None:
    engine = FakeEngine({"kafka": healthy("kafka"), "init": DONE, "app": healthy("app")})

    states = ready_states(_project(("full",), engine, _model(("full",))))

    assert states is not None
    assert sorted(states) == ["app", "init", "kafka"]
    assert states["kafka"].published == {9092: 32001}
    assert engine.observed == [["app", "init", "kafka"]]


def test_only_the_active_profiles_services_are_looked_at() -> None:
    engine = FakeEngine({"kafka": healthy("kafka"), "init": DONE})

    states = ready_states(_project((), engine, _model(())))

    assert states is not None
    assert sorted(states) == ["init", "kafka"]
    assert engine.observed == [["init", "kafka"]]


def test_one_service_not_ready_or_absent_means_no_reuse() -> None:
    starting = ContainerState("app", "c-app", "running", "starting")
    for app in (starting, None):
        states = {"kafka": healthy("kafka"), "init": DONE} | ({"app": app} if app else {})
        engine = FakeEngine(states)

        assert ready_states(_project(("full",), engine, _model(("full",)))) is None


def test_a_service_the_look_did_not_cover_means_no_reuse() -> None:
    # The project's model names a service the all-profiles model does not activate.
    model = _model(("full",))
    engine = FakeEngine({"kafka": healthy("kafka"), "init": DONE, "app": healthy("app")})

    assert ready_states(_project((), engine, model)) is None


def test_the_model_is_resolved_while_the_containers_are_looked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each waits for the other to begin: done one after the other, in either order, the
    # first would wait its five seconds and fail.
    resolving = threading.Event()
    engine = FakeEngine({"kafka": healthy("kafka"), "init": DONE}, gate=resolving)
    project = _project((), engine, None)
    del project.__dict__["config"]

    def resolve(self: ComposeProject) -> dict[str, Any]:
        resolving.set()
        assert engine.started.wait(5), "the containers were not looked at meanwhile"
        return _model(())

    monkeypatch.setattr(ComposeProject, "config", property(resolve))
    states = ready_states(project)

    assert states is not None
    assert engine.started.is_set()
