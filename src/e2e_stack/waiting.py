"""Wait for every service of a stack at once, each against its own deadline, failing fast.

One `docker inspect` of all the project's containers per tick feeds every service's wait
strategy, so waiting for six services costs what waiting for one does. The first service
that fails (exits, turns unhealthy, or runs out of time) ends the wait with its name, its
health-check output and its last log lines: nothing is waited for after that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from e2e_stack.asking import Ask
from e2e_stack.engine import Engine, EngineError
from e2e_stack.headstart import Headstart
from e2e_stack.logtail import fold
from e2e_stack.readiness import ContainerState, Readiness, Verdict

POLL_INTERVAL_S = 0.25
ASK_EVERY_S = 0.2
"""How often a service whose healthcheck can be asked directly is asked (e2e_stack.asking)."""
ASK_WINDOW_S = 1.0
"""Longest stretch of asking before the engine is looked at again."""
NEVER_CREATED = "compose finished but never created its container"
LOG_LINES = 40
LOG_LINES_READ = 1000
"""Read this many, show LOG_LINES distinct ones (see e2e_stack.logtail)."""


class StackUnhealthy(RuntimeError):
    """A service did not become ready; the message carries what to look at."""

    def __init__(self, service: str, reason: str, details: str) -> None:
        super().__init__(f"service {service!r} is not ready: {reason}\n{details}")
        self.service = service
        self.reason = reason


@dataclass
class WaitReport:
    """When each service became ready, in seconds since the wait began."""

    ready_after_s: dict[str, float] = field(default_factory=dict)


def details(engine: Engine, state: ContainerState) -> str:
    """What to look at for a service that failed: its state, health output and last logs."""
    lines = [f"last state: {state.describe()}"]
    if state.health_log:
        lines.append("health-check output (most recent last):")
        lines += [f"  | {entry}" for entry in state.health_log]
    if state.container:
        try:
            logs = fold(engine.logs(state.service, tail=LOG_LINES_READ).splitlines(), LOG_LINES)
        except EngineError as exc:
            logs = [f"(logs unavailable: {exc})"]
        lines.append(f"last {LOG_LINES} distinct log lines of {state.container}:")
        lines += [f"  | {line}" for line in logs]
    return "\n".join(lines)


def wait_until_ready(
    engine: Engine,
    strategies: Mapping[str, Readiness],
    deadlines_s: Mapping[str, float],
    on_change: Callable[[str, str, float], None] = lambda *_: None,
    still_starting: Callable[[], bool] = lambda: False,
    setup_failed: Callable[[], str | None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
    headstart: Headstart | None = None,
    nap: Callable[[float], bool | None] = time.sleep,
) -> WaitReport:
    """Poll until every service is ready; raise StackUnhealthy on the first failure.

    Args:
        engine: the engine adapter bound to the compose project.
        strategies: the wait strategy of each service to wait for.
        deadlines_s: per service, seconds from now after which waiting is a failure.
        on_change: called with (service, state text, seconds) when a service's state changes.
        still_starting: True while `compose up` runs; an absent container is then only late.
        setup_failed: compose's error once `up` has failed: waiting on then stops at once
            (a container left "created" by a failed `up` would otherwise wait out its deadline).
        clock: monotonic clock (injected by tests).
        sleep: how to pass time between polls (injected by tests).
        headstart: asks services their healthcheck's own question and starts created
            containers once what they wait on is ready (e2e_stack.headstart): while the
            engine's check has not passed yet, an answer counts as ready, so neither the wait
            nor a dependent's start is up to one healthcheck interval late.
        nap: how to pass time between asks; a true result (an engine change woke it) ends
            the asking for a look at the engine.
    """
    started = clock()
    report = WaitReport()
    last_seen: dict[str, str] = {}
    pending = set(strategies)
    while pending:
        failure = setup_failed()
        if failure is not None:
            raise StackUnhealthy("(compose up)", "compose setup failed", failure)
        states = engine.observe(sorted(pending))
        elapsed = clock() - started
        for service in sorted(pending):
            state = states[service]
            verdict, reason = strategies[service].judge(state)
            text = state.describe() if verdict is not Verdict.READY else "ready"
            if last_seen.get(service) != text:
                last_seen[service] = text
                on_change(service, text, elapsed)
            if verdict is Verdict.READY:
                report.ready_after_s[service] = round(elapsed, 2)
                pending.discard(service)
            elif verdict is Verdict.FAILED:
                raise StackUnhealthy(service, reason, details(engine, state))
            elif state.status == "absent" and not still_starting():
                raise StackUnhealthy(
                    service,
                    NEVER_CREATED,
                    details(engine, state),
                )
            elif elapsed > deadlines_s[service]:
                raise StackUnhealthy(
                    service,
                    f"not ready after {deadlines_s[service]:.0f}s",
                    details(engine, state),
                )
        if not pending:
            break
        ready = set(report.ready_after_s)
        asks: Mapping[str, Ask] = {}
        if headstart is not None:
            headstart.start_due(states, ready)
            asks = headstart.asks_now(states, ready)
        if not asks:
            sleep(POLL_INTERVAL_S)
            continue
        answered = _answered({s: states[s] for s in asks}, asks, clock, nap)
        for service in answered:
            last_seen[service] = "ready"
            elapsed = clock() - started
            on_change(service, "ready", elapsed)
            report.ready_after_s[service] = round(elapsed, 2)
            pending.discard(service)
        if answered and headstart is not None:
            # Start what waited on them now, from this look (a container compose has started
            # since is left as it is); the next look costs ~0.1 s of a starting machine.
            headstart.start_due(states, set(report.ready_after_s))
    return report


def _answered(
    askable: Mapping[str, ContainerState],
    asks: Mapping[str, Ask],
    clock: Callable[[], float],
    nap: Callable[[float], bool | None],
) -> list[str]:
    """Ask until a service answers, the engine reports a change, or ASK_WINDOW_S passes."""
    until = clock() + ASK_WINDOW_S
    while True:
        answered = [service for service, state in askable.items() if asks[service](state)]
        if answered or clock() >= until or nap(ASK_EVERY_S):
            return answered


def raise_if_broken(engine: Engine, strategies: Mapping[str, Readiness]) -> None:
    """Raise StackUnhealthy for the first service that is down now (one engine round trip).

    A service still starting (restarted by a test) is not broken; one that exited, is
    unhealthy or has no container is. Waits on the pipeline call this about once a second,
    so a stopped consumer fails a test in seconds instead of at its deadline.
    """
    states = engine.observe(sorted(strategies))
    for service in sorted(strategies):
        state = states[service]
        verdict, _ = strategies[service].judge(state)
        if verdict is Verdict.FAILED or state.status == "absent":
            raise StackUnhealthy(
                service,
                f"{state.describe()} while a test waited on the pipeline",
                details(engine, state),
            )
