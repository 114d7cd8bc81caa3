"""E2EDockerManager: start the right stack once, wait for it in parallel, and always tear down.

Lifecycle commands go through pytest-docker's executor, so the `docker_setup` and
`docker_cleanup` fixtures remain the place to change them; python-on-whales inspects
(states, health logs, ports, logs). Each pytest-xdist worker has a stack of its own (see the
README): tests that restart services cannot disturb another worker's tests.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from pytest_docker.plugin import DockerComposeExecutor

from tests.e2e.utils import preflight
from tests.e2e.utils.compose_project import ComposeProject
from tests.e2e.utils.health_wait import (
    NEVER_CREATED,
    StackUnhealthy,
    WaitReport,
    raise_if_broken,
    wait_until_ready,
)
from tests.e2e.utils.readiness import deadline_for, strategies
from tests.e2e.utils.run_identity import LABEL_KEEP

PROFILE_ORDER = ("minimal", "full")
UP_FINISH_GRACE_S = 60.0


@dataclass
class StackTimings:
    """What the summary reports about bringing the stack up."""

    ready_after_s: dict[str, float] = field(default_factory=dict)
    up_seconds: dict[str, float] = field(default_factory=dict)  # per profile started


class E2EDockerManager:
    """Manage the compose stack of one test run (shared by its xdist workers).

    Args:
        project: the compose project (name, files, variables file) of this run.
        executor: pytest-docker's executor, bound to the project's files and name.
        setup: `docker_setup` commands; `{profile}` is replaced by the profile to start.
        cleanup: `docker_cleanup` commands, run once at the end.
        keep: leave the stack running at the end (--e2e-keep/--e2e-reuse).
        say: where progress lines go (the terminal reporter).
    """

    def __init__(
        self,
        project: ComposeProject,
        executor: DockerComposeExecutor,
        setup: list[str],
        cleanup: list[str],
        keep: bool,
        say: Callable[[str], None] = print,
    ) -> None:
        self.project = project
        self._executor = executor
        self._setup = setup
        self._cleanup = cleanup
        self.keep = keep
        self._say = say
        self.timings = StackTimings()
        self.running_services: dict[str, str] = {}
        self.active_profile: str | None = None
        self.failure: StackUnhealthy | None = None
        self.on_ready: Callable[[], None] = lambda: None  # called after each profile is up
        self._lock = threading.Lock()
        self._stopped = False

    # -- public API (the seed's) ---------------------------------------------------------

    async def start_minimal_stack(self) -> dict[str, str]:
        """Kafka, schema registry, MinIO, PostgreSQL, Iceberg REST: service -> host:port."""
        return await self._ensure("minimal")

    async def start_full_stack(self) -> dict[str, str]:
        """The minimal stack plus the K2 services; grows a running minimal stack in place."""
        return await self._ensure("full")

    async def stop_stack(self) -> None:
        """Tear down every profile's services, networks and volumes."""
        await anyio.to_thread.run_sync(self.stop_now)

    async def wait_for_health(self, service_name: str, timeout: int = 60) -> bool:
        """Wait until one service is ready again (after a restart); raise with its logs if not.

        Returns True so the seed's `assert await manager.wait_for_health(...)` reads well; a
        service that does not become ready raises StackUnhealthy rather than returning False,
        so nobody can ignore it.
        """
        model = self.project.config
        if service_name not in model["services"]:
            raise KeyError(
                f"{service_name!r} is not a service of profile(s) "
                f"{', '.join(self.project.profiles)}"
            )
        chosen = {service_name: strategies(model)[service_name]}
        await anyio.to_thread.run_sync(
            lambda: wait_until_ready(
                self.project.docker, chosen, {service_name: float(timeout)}, self._progress
            )
        )
        # A restarted container may have been given another ephemeral host port.
        await anyio.to_thread.run_sync(self._refresh_endpoints)
        return True

    async def get_service_logs(self, service_name: str, lines: int = 50) -> str:
        """The last `lines` log lines of a service, for debugging a failed test."""
        logs = await anyio.to_thread.run_sync(
            lambda: self.project.docker.compose.logs(services=[service_name], tail=str(lines))
        )
        return str(logs)

    # -- starting ------------------------------------------------------------------------

    def adopt(self, profile: str) -> None:
        """Take over a stack that already runs `profile` (a reused one) without `up`."""
        with self._lock:
            self.active_profile = profile
            self.project = self.project.with_profiles((profile,))
            self._refresh_endpoints()
            self.on_ready()

    def ensure_still_ready(self) -> None:
        """Wait for any service that is not ready now (restarted by an earlier test)."""
        model = self.project.config

        def notice(service: str, text: str, _seconds: float) -> None:
            if text != "ready":
                self._say(f"k2-e2e: {service} is {text}; waiting for it before the next test")

        wait_until_ready(
            self.project.docker,
            strategies(model),
            {name: deadline_for(spec) for name, spec in model["services"].items()},
            on_change=notice,
        )
        # An earlier test may have restarted a container, which then got another ephemeral port.
        self._refresh_endpoints()

    def raise_if_broken(self) -> None:
        """Raise StackUnhealthy, with the service's logs, if a service is down right now."""
        raise_if_broken(self.project.docker, strategies(self.project.config))

    def _refresh_endpoints(self) -> None:
        """Update `running_services` in place: fixtures hand out this one dict, so it stays true."""
        current = self.endpoints()
        self.running_services.clear()
        self.running_services.update(current)

    def endpoints(self) -> dict[str, str]:
        """Map service -> 'host:port' of its first published port, for the active profiles."""
        ports = self.project.host_ports()
        found: dict[str, str] = {}
        for service, port in self.project.published():
            if service not in found and (service, port) in ports:
                found[service] = f"{self.project.host}:{ports[(service, port)]}"
        return found

    async def _ensure(self, profile: str) -> dict[str, str]:
        return await anyio.to_thread.run_sync(self._ensure_blocking, profile)

    def _ensure_blocking(self, profile: str) -> dict[str, str]:
        """Start `profile` unless it (or a larger one) runs; a failed start is not retried."""
        with self._lock:
            if self.failure is not None:
                raise self.failure
            current = self.active_profile
            if current is None or PROFILE_ORDER.index(current) < PROFILE_ORDER.index(profile):
                try:
                    # The started project keeps the model it resolved while waiting.
                    self.project = self._start(profile)
                except StackUnhealthy as exc:
                    self.failure = exc
                    raise
                self.active_profile = profile
                self._refresh_endpoints()
                self.on_ready()
            return self.running_services

    def _start(self, profile: str) -> ComposeProject:
        """Run the setup commands for `profile` while waiting on every service in parallel."""
        project = self.project.with_profiles((profile,))
        started = time.monotonic()
        up_error: list[BaseException] = []
        up_done = threading.Event()

        def run_up() -> None:
            try:
                for command in self._setup:
                    self._executor.execute(command.format(profile=profile))
            except BaseException as exc:  # re-raised by the waiting thread
                up_error.append(exc)
            finally:
                up_done.set()

        self._say(f"k2-e2e: starting profile {profile!r} of project {project.name}")
        thread = threading.Thread(target=run_up, name="k2-compose-up", daemon=True)
        thread.start()
        model = project.config  # Resolved while compose creates the containers.
        try:
            report: WaitReport = wait_until_ready(
                project.docker,
                strategies(model),
                {name: deadline_for(spec) for name, spec in model["services"].items()},
                on_change=self._progress,
                still_starting=lambda: not up_done.is_set(),
            )
        except StackUnhealthy as exc:
            up_done.wait(UP_FINISH_GRACE_S)  # Let compose stop creating before teardown.
            if up_error and exc.reason == NEVER_CREATED:
                # compose's own error (a taken port, say) is the cause; the absence a symptom.
                raise StackUnhealthy(
                    "(compose up)", "`docker compose up` failed", str(up_error[0])
                ) from exc
            raise
        up_done.wait()
        if up_error:
            raise StackUnhealthy("(compose up)", "`docker compose up` failed", str(up_error[0]))
        self.timings.ready_after_s.update(report.ready_after_s)
        self.timings.up_seconds[profile] = round(time.monotonic() - started, 2)
        self._say(f"k2-e2e: profile {profile!r} ready in {self.timings.up_seconds[profile]}s")
        return project

    def _progress(self, service: str, text: str, seconds: float) -> None:
        self._say(f"  {service:<18} {text:<22} {seconds:6.1f}s")

    # -- stopping ------------------------------------------------------------------------

    def stop_now(self) -> None:
        """Blocking teardown: every cleanup command, whatever state the stack is in."""
        if self._stopped:
            return
        self._stopped = True
        if self.keep:
            self._say(self.how_to_reach())
            return
        errors = []
        for command in self._cleanup:
            try:
                self._executor.execute(command)
            except Exception as exc:  # every command gets its chance
                errors.append(f"{command}: {exc}")
        if errors:
            raise RuntimeError("teardown failed:\n" + "\n".join(errors))

    def how_to_reach(self) -> str:
        """The commands a developer needs to use or remove a kept stack."""
        files = " ".join(f"-f {path}" for path in self.project.compose_files)
        base = f"docker compose --env-file {self.project.env_file} {files} -p {self.project.name}"
        lines = [f"k2-e2e: stack {self.project.name} left running ({LABEL_KEEP}=true)"]
        with contextlib.suppress(Exception):
            lines += [f"  {service:<18} {address}" for service, address in self.endpoints().items()]
        lines += [f"  inspect: {base} ps", f"  remove:  {base} --profile full down -v"]
        return "\n".join(lines)


def default_setup() -> list[str]:
    """Start a profile detached; the manager does the waiting, in parallel and with logs."""
    return ["--profile {profile} up -d"]


def default_cleanup(profiles: list[str]) -> list[str]:
    """Remove every profile's services (down only removes the profiles it is told about)."""
    flags = " ".join(f"--profile {profile}" for profile in profiles)
    return [f"{flags} down -v --remove-orphans --timeout 10"]


def run_preflight(project: ComposeProject, env: dict[str, str] | None = None) -> dict[str, Any]:
    """All checks before `up`; return the model of every profile.

    The three slow checks run at once (each is a CLI start-up); their errors are reported in
    dependency order, so a dead engine is named before anything that follows from it.
    """
    docker = project.docker
    with ThreadPoolExecutor(max_workers=3) as pool:
        engine = pool.submit(preflight.check_engine, docker)
        compose = pool.submit(preflight.check_compose, docker)
        config = pool.submit(preflight.check_config, project.everything)
        engine.result()
        compose.result()
        everything = config.result()
    preflight.check_images(docker, everything, project.profiles)
    texts = [Path(path).read_text() for path in project.compose_files]
    preflight.check_ports(preflight.pinned_ports(texts, env if env is not None else os.environ))
    return everything
