"""StackManager: start the right profile once, wait for it in parallel, and always tear down.

The `docker_setup` and `docker_cleanup` commands (pytest-docker's fixtures) are what runs:
setup with the profile being started as compose's `--profile`, cleanup with every profile the
files define (compose's `down` removes only the profiles it is told about). Waiting, ports and
logs go through the same project's engine adapter, so what runs is what is watched. Each
pytest-xdist worker has a stack of its own: a test that restarts a service cannot disturb
another worker's tests.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio

from e2e_stack.asking import askable, exec_asks
from e2e_stack.engine import LOOPBACK, EngineError
from e2e_stack.headstart import Headstart
from e2e_stack.project import (
    ComposeProject,
    compose_command,
    labels_overlay,
    write_env_file,
    write_overlay,
)
from e2e_stack.readiness import ContainerState, Recovering, deadline_for, strategies
from e2e_stack.waiting import NEVER_CREATED, StackUnhealthy, WaitReport, raise_if_broken
from e2e_stack.waiting import wait_until_ready as _wait
from e2e_stack.wakeup import EngineEvents

UP_FINISH_GRACE_S = 60.0
DEFAULT_SETUP: Final = ("up -d",)
"""Start detached; the manager does the waiting, in parallel and with logs."""
DEFAULT_CLEANUP: Final = ("down -v --remove-orphans --timeout 10",)
"""Remove containers, networks and volumes (of every profile: the manager passes them all)."""
NO_PROFILE = ""
"""The profile name of a project whose services have no profiles at all."""


@dataclass
class StackTimings:
    """What the summary reports about bringing the stack up."""

    ready_after_s: dict[str, float] = field(default_factory=dict)
    up_seconds: dict[str, float] = field(default_factory=dict)  # per profile started


def growth_order(everything: Mapping[str, Any], configured: Sequence[str] = ()) -> tuple[str, ...]:
    """The profiles a session may grow through, smallest first.

    Configured ones as given; otherwise every profile the files name, ordered by how many
    services each starts (a larger profile is taken to include the smaller). A project without
    profiles has one, `NO_PROFILE`.
    """
    services = (everything.get("services") or {}).values()
    named = {p for spec in services for p in spec.get("profiles") or []}
    if configured:
        unknown = [p for p in configured if p not in named]
        if unknown:
            raise ValueError(
                f"profile(s) {', '.join(unknown)} are not in the compose files "
                f"(they define: {', '.join(sorted(named)) or 'none'})"
            )
        return tuple(configured)
    if not named:
        return (NO_PROFILE,)

    def size(profile: str) -> int:
        return sum(1 for spec in services if profile in (spec.get("profiles") or [profile]))

    return tuple(sorted(named, key=lambda p: (size(p), p)))


def reachable_profiles(
    everything: Mapping[str, Any], configured: Sequence[str], start: str | None
) -> tuple[str, ...]:
    """The profiles a session starting at `start` (None: the smallest) may grow to.

    Preflight checks the images of all of them, so that growing in the middle of a run
    never stops at a missing image. ValueError names a profile the files do not define.
    """
    order = growth_order(everything, configured)
    first = start or order[0]
    if first not in order:
        raise ValueError(
            f"profile {first!r} is not in the compose files: choose one of {', '.join(order)}"
        )
    return tuple(profile for profile in order[order.index(first) :] if profile)


def starts_all(setup: Sequence[str]) -> bool:
    """Whether the setup commands start every service they create (a plain `up`).

    Only then does starting a created container sooner than compose change nothing but when.
    """
    words = [shlex.split(command) for command in setup]
    return any(
        command[:1] == ["up"] and not {"--no-start", "--no-deps"} & set(command)
        for command in words
    )


def _as_list(commands: str | Sequence[str]) -> list[str]:
    """pytest-docker accepts one command as a string, or a list; nothing means no command."""
    if not commands:
        return []
    return [commands] if isinstance(commands, str) else list(commands)


class StackManager:
    """The compose stack of one pytest process.

    Args:
        project: the carrier (command, files, name) built from pytest-docker's fixtures.
        setup: `docker_setup` commands, run for the profile being started.
        cleanup: `docker_cleanup` commands, run once at the end with every profile.
        order: the profiles the stack may grow through, smallest first.
        keep: leave the stack running at the end (keep/reuse).
        say: where progress lines go (the terminal).
        run_dir: the run's generated files (variables, labels overlay). A kept stack's
            remove command deletes it too: left behind, the next `--e2e-reuse` would start a
            new stack with a removed one's labels and variables.
    """

    def __init__(
        self,
        project: ComposeProject,
        setup: str | Sequence[str],
        cleanup: str | Sequence[str],
        order: Sequence[str],
        keep: bool = False,
        say: Callable[[str], None] = print,
        run_dir: Path | None = None,
    ) -> None:
        self.project = project
        self.run_dir = run_dir
        self._setup = _as_list(setup)
        self._cleanup = _as_list(cleanup)
        self.order = tuple(order)
        self.keep = keep
        self._say = say
        self.timings = StackTimings()
        self.running_services: dict[str, str] = {}
        self.active_profile: str | None = None
        self.failure: StackUnhealthy | None = None
        self.on_ready: Callable[[], None] = lambda: None  # called after each profile is up
        # Every service seen ready since the last test ended: the next still-ready check has
        # nothing to notice. The `_stack_still_ready` fixture clears it after each test.
        self.ready_since_last_test = False
        self._lock = threading.Lock()
        self._stopped = False

    # -- the async surface ---------------------------------------------------------------

    async def start(self, profile: str | None = None) -> dict[str, str]:
        """Run `profile` (default the smallest), growing a smaller running one in place.

        Returns service -> 'host:port' of its first published port; the same dict stays
        current after restarts.
        """
        return await anyio.to_thread.run_sync(self.start_now, profile)

    async def stop(self) -> None:
        """Tear down every profile's services, networks and volumes."""
        await anyio.to_thread.run_sync(self.stop_now)

    async def wait_for_health(self, service: str, timeout: float = 60) -> None:
        """Wait until one service is ready again (after a restart); raise with its logs if not."""
        await anyio.to_thread.run_sync(self.wait_for_service, service, timeout)

    async def service_logs(self, service: str, lines: int = 50) -> str:
        """The last `lines` log lines of a service."""
        return await anyio.to_thread.run_sync(lambda: self.project.engine.logs(service, lines))

    # -- blocking ------------------------------------------------------------------------

    def wait_for_service(self, service: str, timeout: float) -> None:
        """Blocking `wait_for_health`."""
        model = self.project.config
        if service not in model["services"]:
            raise KeyError(
                f"{service!r} is not a service of the running profile "
                f"{self.active_profile or '(none)'}"
            )
        _wait(
            self.project.engine,
            {service: strategies(model)[service]},
            {service: float(timeout)},
            self._progress,
        )
        self._refresh_endpoints()  # A restarted container may have another ephemeral port.

    def wait_recovered(self, since: float) -> None:
        """After a fault: wait until every service is ready again.

        The whole stack is recovering, not only the service that was broken: a neighbour
        that depends on it may read "unhealthy" until its next probe. So here a stale
        "unhealthy" is not yet a failure (only an exit is), a "healthy" counts only from a
        probe that ended after `since` (epoch seconds, the fault's end), and each service gets
        its healthcheck's deadline.
        """
        model = self.project.config
        _wait(
            self.project.engine,
            {name: Recovering(strategy, since) for name, strategy in strategies(model).items()},
            {name: deadline_for(spec) for name, spec in model["services"].items()},
            on_change=self._progress,
        )
        self._refresh_endpoints()  # A restarted container may have another ephemeral port.

    def adopt(self, profile: str, states: Mapping[str, ContainerState] | None = None) -> None:
        """Take over a stack that already runs `profile` (a reused one) without `up`.

        `states`: the services as just observed ready (their ports), saving another look.
        """
        with self._lock:
            self.active_profile = profile
            self.project = self.project.with_profiles(profiles_of(profile))
            self._refresh_endpoints(states)
            self.ready_since_last_test = True
            self.on_ready()

    def ensure_still_ready(self) -> None:
        """Wait for any service that is not ready now (restarted by an earlier test)."""
        model = self.project.config

        def notice(service: str, text: str, _seconds: float) -> None:
            if text != "ready":
                self._say(f"e2e-stack: {service} is {text}; waiting for it before the next test")

        _wait(
            self.project.engine,
            strategies(model),
            {name: deadline_for(spec) for name, spec in model["services"].items()},
            on_change=notice,
            headstart=Headstart(model, askable(model, self.project.host)),
        )
        self._refresh_endpoints()
        self.ready_since_last_test = True

    def raise_if_broken(self, recovering_since: float | None = None) -> None:
        """Raise StackUnhealthy, with the service's logs, if a service is down right now.

        With `recovering_since` (epoch seconds a fault ended), a service that is not ready
        yet may still be recovering (see Recovering): only an exit or a missing container
        counts as broken.
        """
        chosen = strategies(self.project.config)
        if recovering_since is not None:
            chosen = {name: Recovering(s, recovering_since) for name, s in chosen.items()}
        raise_if_broken(self.project.engine, chosen)

    def endpoints(self, states: Mapping[str, ContainerState] | None = None) -> dict[str, str]:
        """Map service -> 'host:port' of its first published port, for the active profile."""
        ports = self.project.host_ports(states)
        found: dict[str, str] = {}
        for service, port in self.project.published():
            if service not in found and (service, port) in ports:
                found[service] = f"{self.project.host}:{ports[(service, port)]}"
        return found

    def _refresh_endpoints(self, states: Mapping[str, ContainerState] | None = None) -> None:
        """Update `running_services` in place: fixtures hand out this one dict."""
        current = self.endpoints(states)
        self.running_services.clear()
        self.running_services.update(current)

    def start_now(self, profile: str | None = None) -> dict[str, str]:
        """Blocking `start`; a failed start is not retried (every later caller gets its error)."""
        wanted = self.order[0] if profile is None else profile
        if wanted not in self.order:
            raise ValueError(
                f"profile {wanted!r} is not one this session can run: {', '.join(self.order)}"
            )
        with self._lock:
            if self.failure is not None:
                raise self.failure
            current = self.active_profile
            if current is None or self.order.index(current) < self.order.index(wanted):
                try:
                    self.project = self._start(wanted)
                except StackUnhealthy as exc:
                    self.failure = exc
                    raise
                self.active_profile = wanted
                self._refresh_endpoints()
                self.ready_since_last_test = True
                self.on_ready()
            return self.running_services

    def _start(self, profile: str) -> ComposeProject:
        """Run the setup commands for `profile` while waiting on every service in parallel."""
        project = self.project.with_profiles(profiles_of(profile))
        started = time.monotonic()
        up_error: list[BaseException] = []
        up_done = threading.Event()
        events = EngineEvents(project.engine)

        def run_up() -> None:
            try:
                for command in self._setup:
                    project.engine.compose(command)
            except BaseException as exc:  # re-raised by the waiting thread
                up_error.append(exc)
            finally:
                up_done.set()
                events.poke()

        self._say(f"e2e-stack: starting profile {profile or '(default)'!r} of {project.name}")
        thread = threading.Thread(target=run_up, name="e2e-stack-up", daemon=True)
        try:
            with events:  # Listening before `up`, so that no change goes unseen.
                thread.start()
                model = project.config  # Resolved while compose creates the containers.
                report: WaitReport = _wait(
                    project.engine,
                    strategies(model),
                    {name: deadline_for(spec) for name, spec in model["services"].items()},
                    on_change=self._progress,
                    still_starting=lambda: not up_done.is_set(),
                    setup_failed=lambda: str(up_error[0]) if up_error else None,
                    sleep=events.sleep,
                    headstart=Headstart(
                        model,
                        askable(model, project.host),
                        exec_asks(model, project.engine.check_in),
                        project.engine.start_created if starts_all(self._setup) else None,
                    ),
                    nap=events.wait,
                )
        except StackUnhealthy as exc:
            up_done.wait(UP_FINISH_GRACE_S)  # Let compose stop creating before teardown.
            if up_error and exc.reason == NEVER_CREATED:
                # compose's own error (a taken port, say) is the cause; the absence a symptom.
                raise StackUnhealthy(
                    "(compose up)", "compose setup failed", str(up_error[0])
                ) from exc
            raise
        up_done.wait()
        if up_error:
            raise StackUnhealthy("(compose up)", "compose setup failed", str(up_error[0]))
        self.timings.ready_after_s.update(report.ready_after_s)
        self.timings.up_seconds[profile] = round(time.monotonic() - started, 2)
        self._say(
            f"e2e-stack: profile {profile or '(default)'!r} ready in "
            f"{self.timings.up_seconds[profile]}s"
        )
        return project

    def _progress(self, service: str, text: str, seconds: float) -> None:
        self._say(f"  {service:<18} {text:<22} {seconds:6.1f}s")

    def stop_now(self) -> None:
        """Blocking teardown: every cleanup command, whatever state the stack is in."""
        if self._stopped:
            return
        self._stopped = True
        if self.keep:
            self._say(self.how_to_reach())
            return
        everything = self.project.with_profiles(tuple(p for p in self.order if p))
        errors = []
        for command in self._cleanup:
            try:
                everything.engine.compose(command)
            except EngineError as exc:  # every command gets its chance
                errors.append(f"{command}: {exc}")
        if errors:
            raise RuntimeError("teardown failed:\n" + "\n".join(errors))

    def how_to_reach(self) -> str:
        """The commands a developer needs to use or remove a kept stack."""
        base = self.project.cli()
        profiles = " ".join(f"--profile {p}" for p in self.order if p)
        lines = [f"e2e-stack: stack {self.project.name} left running (kept on purpose)"]
        with contextlib.suppress(EngineError):
            lines += [f"  {service:<18} {address}" for service, address in self.endpoints().items()]
        remove = " ".join(part for part in (base, profiles, "down -v") if part)
        if self.run_dir is not None:
            remove += f" && rm -rf {shlex.quote(str(self.run_dir))}"
        lines += [f"  inspect: {base} ps", f"  remove:  {remove}"]
        return "\n".join(lines)


def profiles_of(profile: str) -> tuple[str, ...]:
    """The compose profiles that run `profile` (none for `NO_PROFILE`)."""
    return (profile,) if profile else ()


def labelled_stack(
    files: Sequence[str],
    root: Path,
    name: str,
    run_dir: Path,
    variables: Mapping[str, str],
    labels: Mapping[str, str],
    cgroup_parent: str | None = None,
    overlays: Sequence[Mapping[str, Any]] = (),
    host: str = LOOPBACK,
) -> StackManager:
    """A stack outside the session's fixtures (a script's, a test's second one).

    Built as the fixtures build theirs: the variables file, the labels overlay (so the sweep
    covers it if its owner dies), then `overlays`; its generated files go into `run_dir`.
    `host` is where its ports are published (see `preflight.publish_address`).
    """
    env_file = write_env_file(run_dir / "stack.env", variables)
    project = ComposeProject.from_fixtures(compose_command(env_file), files, name, root, host=host)
    everything = project.everything()
    project = project.with_overlay(
        write_overlay(run_dir / "labels.json", labels_overlay(everything, labels, cgroup_parent))
    )
    for number, overlay in enumerate(overlays):
        project = project.with_overlay(write_overlay(run_dir / f"overlay-{number}.json", overlay))
    return StackManager(
        project, DEFAULT_SETUP, DEFAULT_CLEANUP, growth_order(everything), run_dir=run_dir
    )
