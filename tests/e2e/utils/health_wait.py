"""Wait for every service of a stack at once, each against its own deadline, failing fast.

One `docker inspect` of all the project's containers per tick feeds every service's wait
strategy, so waiting for six services costs what waiting for one does. The first service
that fails (exits, turns unhealthy, or runs out of time) ends the wait with its name, its
health-check output and its last log lines: nothing is waited for after that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run

from tests.e2e.utils.readiness import ContainerState, Readiness, Verdict

POLL_INTERVAL_S = 0.25
NEVER_CREATED = "compose finished but never created its container"
LOG_LINES = 40


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


def _inspect_project(docker: DockerClient) -> list[dict[str, Any]]:
    """`docker inspect` of every container of the project, in one engine round trip.

    python-on-whales would inspect each container separately and `docker compose ps` costs
    a compose start-up (0.2 s) per poll; `docker ps` plus one batched inspect costs 0.08 s
    and returns health logs too.
    """
    project = docker.client_config.compose_project_name
    base = [*docker.client_config.docker_cmd]
    ids = str(
        run([*base, "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"])
    ).split()
    if not ids:
        return []
    try:
        rows: list[dict[str, Any]] = json.loads(str(run([*base, "container", "inspect", *ids])))
    except DockerException:
        return []  # A container vanished between the two calls; the next poll will tell.
    return rows


def observe(docker: DockerClient, services: list[str]) -> dict[str, ContainerState]:
    """Current state of each service's container ('absent' when compose has not made it)."""
    states = {name: ContainerState(name, "", "absent", None) for name in services}
    for row in _inspect_project(docker):
        labels = row.get("Config", {}).get("Labels") or {}
        service = labels.get("com.docker.compose.service", "")
        if service not in states:
            continue
        state = row.get("State") or {}
        health = state.get("Health") or {}
        ports = (row.get("NetworkSettings") or {}).get("Ports") or {}
        states[service] = ContainerState(
            service=service,
            container=str(row.get("Name", "")).lstrip("/"),
            status=str(state.get("Status", "")),
            health=health.get("Status") or None,
            exit_code=int(state.get("ExitCode") or 0),
            health_log=tuple(
                (entry.get("Output") or "").strip()[-300:]
                for entry in (health.get("Log") or [])[-3:]
            ),
            published={
                int(target.split("/")[0]): int(bindings[0]["HostPort"])
                for target, bindings in ports.items()
                if bindings
            },
            pid=int(state.get("Pid") or 0),
        )
    return states


def _details(docker: DockerClient, state: ContainerState) -> str:
    lines = [f"last state: {state.describe()}"]
    if state.health_log:
        lines.append("health-check output (most recent last):")
        lines += [f"  | {entry}" for entry in state.health_log]
    if state.container:
        try:
            logs = docker.container.logs(state.container, tail=LOG_LINES)
        except DockerException as exc:
            logs = f"(logs unavailable: {exc})"
        lines.append(f"last {LOG_LINES} log lines of {state.container}:")
        lines += [f"  | {line}" for line in str(logs).splitlines()]
    return "\n".join(lines)


def wait_until_ready(
    docker: DockerClient,
    strategies: Mapping[str, Readiness],
    deadlines_s: Mapping[str, float],
    on_change: Callable[[str, str, float], None] = lambda *_: None,
    still_starting: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
) -> WaitReport:
    """Poll until every service is ready; raise StackUnhealthy on the first failure.

    Args:
        docker: client bound to the compose project.
        strategies: the wait strategy of each service to wait for.
        deadlines_s: per service, seconds from now after which waiting is a failure.
        on_change: called with (service, state text, seconds) when a service's state changes.
        still_starting: True while `compose up` runs; an absent container is then only late.
        clock: monotonic clock (injected by tests).
        sleep: how to pass time between polls (injected by tests).
    """
    started = clock()
    report = WaitReport()
    last_seen: dict[str, str] = {}
    pending = set(strategies)
    while pending:
        states = observe(docker, sorted(pending))
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
                raise StackUnhealthy(service, reason, _details(docker, state))
            elif state.status == "absent" and not still_starting():
                raise StackUnhealthy(
                    service,
                    NEVER_CREATED,
                    _details(docker, state),
                )
            elif elapsed > deadlines_s[service]:
                raise StackUnhealthy(
                    service,
                    f"not ready after {deadlines_s[service]:.0f}s",
                    _details(docker, state),
                )
        if pending:
            sleep(POLL_INTERVAL_S)
    return report


def raise_if_broken(docker: DockerClient, strategies: Mapping[str, Readiness]) -> None:
    """Raise StackUnhealthy for the first service that is down now (one engine round trip).

    A service still starting (restarted by a test) is not broken; one that exited, is
    unhealthy or has no container is. Waits on the pipeline call this about once a second,
    so a stopped consumer fails a test in seconds instead of at its deadline.
    """
    states = observe(docker, sorted(strategies))
    for service in sorted(strategies):
        state = states[service]
        verdict, _ = strategies[service].judge(state)
        if verdict is Verdict.FAILED or state.status == "absent":
            raise StackUnhealthy(
                service,
                f"{state.describe()} while a test waited on the pipeline",
                _details(docker, state),
            )
