"""Learn readiness sooner than the engine's healthcheck, and start what waits on it at once.

`docker compose up` creates every container first, then starts each one when its
`depends_on` conditions hold, judged by the engine's healthcheck, which runs once per
interval (2 s in K2's e2e override). Measured on a plain `up --wait` of K2's minimal profile:
postgres listened 0.8 s before the engine called it healthy, and compose started the schema
registry 0.6 s after that; the registry itself, the last to be ready, was reported up to an
interval late again.

During the start-up wait a `Headstart`:
- asks a starting service its healthcheck's own question (e2e_stack.asking): over HTTP from
  the host where it can, always; by exec'ing the check in the container only for a service
  that is the one thing a created container still waits for (an exec costs a probe's CPU);
- starts a created container itself as soon as every one of its conditions holds by the
  wait's judgement. Compose's own start of it, later in the same `up`, finds it running and
  does nothing (the engine answers "not modified"). Containers due together start in one
  call, the most awaited first: compose started K2's three independent services 0.3-0.4 s
  apart in an order of its own, postgres (the registry's only need) last.

The compose file stays the one source of what "ready" means and of what waits for what. A
one-shot (something depends on it completing) is left to compose: started early and done,
compose would start it a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from e2e_stack.asking import Ask
from e2e_stack.engine import EngineError
from e2e_stack.readiness import ContainerState

STARTED: Final = "service_started"
HEALTHY: Final = "service_healthy"
COMPLETED: Final = "service_completed_successfully"


class Headstart:
    """What the start-up wait does between looks at the engine, for one compose model.

    Args:
        model: the resolved compose model (`docker compose config`).
        asks: per service, a cheap way to ask its healthcheck (HTTP from the host).
        costly_asks: per service, a costly way (exec in the container), used only for a
            service a created container waits on and on nothing else.
        start: starts created containers by id (Engine.start_created); None: never start.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        asks: Mapping[str, Ask],
        costly_asks: Mapping[str, Ask] | None = None,
        start: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        services: Mapping[str, Any] = model.get("services") or {}
        self._checked = {
            name
            for name, spec in services.items()
            if (spec.get("healthcheck") or {}).get("test")
            and not (spec.get("healthcheck") or {}).get("disable")
        }
        self._needs: dict[str, dict[str, str]] = {
            name: {
                dependency: (condition or {}).get("condition", STARTED)
                for dependency, condition in (spec.get("depends_on") or {}).items()
                if dependency in services
            }
            for name, spec in services.items()
        }
        self._one_shots = {
            dependency
            for needs in self._needs.values()
            for dependency, kind in needs.items()
            if kind == COMPLETED
        }
        self._asks = dict(asks)
        self._costly = dict(costly_asks or {})
        self._start = start
        self.started: list[str] = []
        """Services this headstart started, in order (reported with the wait's timings)."""

    def _unmet(
        self, service: str, states: Mapping[str, ContainerState], ready: set[str]
    ) -> dict[str, str]:
        """The conditions of `service` that do not hold yet, by the wait's judgement."""
        unmet: dict[str, str] = {}
        for dependency, kind in self._needs[service].items():
            if dependency in ready:
                continue
            state = states.get(dependency)
            if kind == STARTED and state is not None and state.status == "running":
                continue
            unmet[dependency] = kind
        return unmet

    def _waiting(self, states: Mapping[str, ContainerState]) -> list[str]:
        """Created containers this headstart may start (not one-shots), most awaited first.

        Most awaited: by the most services directly, then through others (K2: postgres, which
        the registry and the catalog wait on, before minio and kafka).
        """
        return sorted(
            (
                service
                for service, state in states.items()
                if state.status == "created"
                and state.container
                and service in self._needs
                and service not in self._one_shots
                and service not in self.started
                and all(
                    kind != HEALTHY or dependency in self._checked
                    for dependency, kind in self._needs[service].items()
                )
            ),
            key=lambda service: (
                -sum(service in needs for needs in self._needs.values()),
                -len(self._awaiting(service)),
                service,
            ),
        )

    def _awaiting(self, service: str) -> set[str]:
        """Every service that waits on `service`, directly or through others."""
        found: set[str] = set()
        frontier = [service]
        while frontier:
            current = frontier.pop()
            for waiter, needs in self._needs.items():
                if current in needs and waiter not in found:
                    found.add(waiter)
                    frontier.append(waiter)
        return found

    def start_due(self, states: Mapping[str, ContainerState], ready: set[str]) -> list[str]:
        """Start every waiting container whose conditions all hold; the services started.

        Args:
            states: this look's state of each service not ready yet.
            ready: the services the wait has found ready.
        """
        if self._start is None:
            return []
        due = [s for s in self._waiting(states) if not self._unmet(s, states, ready)]
        if not due:
            return []
        try:
            self._start([states[service].container for service in due])
        except EngineError:
            # Compose starts these itself once the engine's checks agree, and reports the
            # engine's error (a taken port, say) as its own; the wait then fails on that.
            return []
        self.started += due
        return due

    def asks_now(self, states: Mapping[str, ContainerState], ready: set[str]) -> dict[str, Ask]:
        """Per starting service worth asking now, how to ask it.

        Args:
            states: this look's state of each service not ready yet.
            ready: the services the wait has found ready.
        """
        awaited: set[str] = set()
        if self._start is not None:
            for service in self._waiting(states):
                unmet = self._unmet(service, states, ready)
                if len(unmet) == 1 and set(unmet.values()) == {HEALTHY}:
                    awaited |= set(unmet)
        chosen: dict[str, Ask] = {}
        for service, state in states.items():
            if service in ready or state.status != "running" or state.health != "starting":
                continue
            if service in self._asks:
                chosen[service] = self._asks[service]
            elif service in awaited and service in self._costly:
                chosen[service] = self._costly[service]
        return chosen
