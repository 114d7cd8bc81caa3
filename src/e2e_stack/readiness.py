"""Wait strategies as objects: when is a service ready, and when has it certainly failed.

The strategy for each service is derived from the compose model (a healthcheck, or a one-shot
that others wait on to complete), never from a list of names kept here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

DOWN: tuple[str, ...] = ("exited", "dead", "restarting")
"""Statuses of a container whose process has ended. "restarting": it exited and its restart
policy is bringing it back, which a wait cannot tell from a crash loop; the exit says why."""


class Verdict(Enum):
    """Where a service stands."""

    WAITING = "waiting"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ContainerState:
    """What one `docker inspect` says about a service's container."""

    service: str
    container: str
    status: str  # created, running, restarting, exited, dead, ... or "absent"
    health: str | None  # starting, healthy, unhealthy; None without a healthcheck
    exit_code: int = 0
    health_log: tuple[str, ...] = ()  # last health-check outputs, most recent last
    published: Mapping[int, int] = field(default_factory=dict)  # container port -> host port
    pid: int = 0  # the main process's pid on the engine's host (0 when not running)
    health_checked_at: float | None = None  # when the last health probe ended (epoch s)

    def describe(self) -> str:
        """Short human form: 'running (starting)', 'exited (1)'."""
        if self.status == "exited":
            return f"exited ({self.exit_code})"
        if self.status == "restarting":
            return f"restarting (exited {self.exit_code})"
        return f"{self.status} ({self.health})" if self.health else self.status


class Readiness(Protocol):
    """A wait strategy: judges one observed state of a service."""

    def judge(self, state: ContainerState) -> tuple[Verdict, str]:
        """The verdict and, when failed, why."""
        ...


class HealthcheckPasses:
    """Ready when the container's own healthcheck says healthy; failed on unhealthy or exit."""

    def judge(self, state: ContainerState) -> tuple[Verdict, str]:
        """See class docstring."""
        if state.status in DOWN:
            return Verdict.FAILED, f"container {state.describe()} before becoming healthy"
        if state.health == "healthy":
            return Verdict.READY, ""
        if state.health == "unhealthy":
            return Verdict.FAILED, "healthcheck reports unhealthy"
        return Verdict.WAITING, ""


class CompletesSuccessfully:
    """A one-shot: ready when it exited 0, failed when it exited otherwise."""

    def judge(self, state: ContainerState) -> tuple[Verdict, str]:
        """See class docstring."""
        if state.status in DOWN:
            if state.exit_code == 0 and state.status != "restarting":
                return Verdict.READY, ""
            return Verdict.FAILED, f"one-shot {state.describe()}"
        return Verdict.WAITING, ""


class KeepsRunning:
    """No healthcheck and not a one-shot: the best that can be said is that it runs."""

    def judge(self, state: ContainerState) -> tuple[Verdict, str]:
        """See class docstring."""
        if state.status in DOWN:
            if state.status == "exited" and state.exit_code == 0:
                return Verdict.FAILED, (
                    f"container {state.describe()}; if it is a one-shot, let the service that "
                    "needs it depend on it with condition service_completed_successfully "
                    "(as `docker compose up --wait` requires)"
                )
            return Verdict.FAILED, f"container {state.describe()}"
        if state.status == "running":
            return Verdict.READY, ""
        return Verdict.WAITING, ""


@dataclass(frozen=True)
class Recovering:
    """A service of a stack that a fault has just ended on: only a probe run after it counts.

    Docker reports the last probe's verdict until the next probe runs, so right after a fault
    a service can read "unhealthy" while it is fine, or "healthy" while it is broken (a
    registry whose database was restarted kept answering health from before, then failed
    every request). So a healthcheck verdict counts only from a probe that ended after
    `since`; until then, and while "unhealthy", it waits (until its deadline). An exit fails.
    """

    inner: Readiness
    since: float
    """Epoch seconds when the fault ended."""

    def judge(self, state: ContainerState) -> tuple[Verdict, str]:
        """See class docstring."""
        verdict, reason = self.inner.judge(state)
        if state.status in ("exited", "dead"):
            return verdict, reason
        if state.health is not None and (state.health_checked_at or 0.0) <= self.since:
            return Verdict.WAITING, ""
        if verdict is Verdict.FAILED:
            return Verdict.WAITING, ""
        return verdict, reason


def strategies(model: Mapping[str, Any]) -> dict[str, Readiness]:
    """A strategy per service of a `docker compose config` model."""
    services: Mapping[str, Any] = model.get("services") or {}
    completed = {
        dependency
        for spec in services.values()
        for dependency, condition in (spec.get("depends_on") or {}).items()
        if (condition or {}).get("condition") == "service_completed_successfully"
    }
    chosen: dict[str, Readiness] = {}
    for name, spec in services.items():
        check = spec.get("healthcheck") or {}
        if check.get("test") and not check.get("disable"):
            chosen[name] = HealthcheckPasses()
        elif name in completed:
            chosen[name] = CompletesSuccessfully()
        else:
            chosen[name] = KeepsRunning()
    return chosen


def _seconds(value: Any, default: float) -> float:
    """Compose durations come back as '1s', '2m0s', '1m30s' or nanoseconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value) / 1e9 if value > 1e6 else float(value)
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    text = str(value)
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        total += float(number or 0) * units.get(unit, 1.0)
        number = ""
        i += len(unit)
    return total + (float(number) if number else 0.0)


def deadline_for(spec: Mapping[str, Any], floor_s: float = 30.0) -> float:
    """How long a service may take: its healthcheck's own patience, plus slack for a cold JVM.

    start_period + retries * (interval + timeout) is when Docker itself would give up.
    """
    check = spec.get("healthcheck") or {}
    if not check.get("test"):
        return floor_s
    start = _seconds(check.get("start_period"), 0.0)
    interval = _seconds(check.get("interval"), 30.0)
    timeout = _seconds(check.get("timeout"), 30.0)
    retries = int(check.get("retries") or 3)
    return max(floor_s, start + retries * (interval + timeout))
