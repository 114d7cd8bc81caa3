"""The one adapter over the Docker engine: every call this plugin makes to Docker is here.

python-on-whales does what it models well (versions, info, images, compose config, logs,
stats, contexts, service restarts); the compose CLI runs the lifecycle subcommands that the
`docker_setup`/`docker_cleanup` fixtures name, as pytest-docker defines them; and one batched
`docker inspect` per poll serves the waits (see `Engine.observe` for why and what it costs).
Every failure comes out as `EngineError`, so callers need to know one exception.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from e2e_stack.readiness import ContainerState

if TYPE_CHECKING:
    from python_on_whales import DockerClient

COMPOSE_PROJECT_LABEL: Final = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL: Final = "com.docker.compose.service"
LOOPBACK: Final = "127.0.0.1"
CONTEXT_HOST_FORMAT: Final = "{{.Endpoints.docker.Host}}"
"""`docker context inspect` of the current context: the endpoint the docker CLI uses."""
_HEALTH_LOG_ENTRIES = 3
_HEALTH_OUTPUT_CHARS = 300


class EngineError(RuntimeError):
    """A Docker call failed; the message is the command's own error output."""


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    # python-on-whales is imported with its first use: loading it takes 0.23 s here (pydantic
    # models), and starting or reusing a stack needs none of it (only faults, logs, stats).
    from python_on_whales.exceptions import DockerException

    try:
        yield
    except DockerException as exc:
        detail = (exc.stderr or exc.stdout or str(exc)).strip()
        raise EngineError(detail or str(exc)) from exc


def _run(argv: Sequence[str]) -> str:
    """Run a docker CLI command (no shell); its stdout, or EngineError with its stderr."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise EngineError(f"{argv[0]!r} is not installed or not on PATH") from exc
    if proc.returncode != 0:
        raise EngineError(
            f"`{shlex.join(argv)}` exited {proc.returncode}: "
            + (proc.stderr.strip() or proc.stdout.strip())
        )
    return proc.stdout


@dataclass(frozen=True)
class Resource:
    """A container, network or volume as the sweep sees it."""

    kind: str  # "container", "network" or "volume"
    ref: str
    labels: Mapping[str, str]

    @property
    def project(self) -> str:
        """Its compose project name ("" if it has none)."""
        return self.labels.get(COMPOSE_PROJECT_LABEL, "")


@dataclass(frozen=True)
class ComposeBinding:
    """How to call compose for one project: the CLI prefix, files, name, profiles, env files."""

    client_call: tuple[str, ...]
    compose_options: tuple[str, ...]
    files: tuple[Path, ...]
    project_name: str
    profiles: tuple[str, ...]
    env_files: tuple[Path, ...]
    project_directory: Path | None

    def argv(self, *subcommand: str) -> list[str]:
        """The full compose command line for a subcommand."""
        files = [arg for path in self.files for arg in ("-f", str(path))]
        profiles = [arg for name in self.profiles for arg in ("--profile", name)]
        return [
            *self.client_call,
            "compose",
            *self.compose_options,
            *files,
            "-p",
            self.project_name,
            *profiles,
            *subcommand,
        ]


def _state_of(row: Mapping[str, Any]) -> ContainerState:
    """One raw `docker inspect` row as the readiness strategies see it."""
    labels = (row.get("Config") or {}).get("Labels") or {}
    state = row.get("State") or {}
    health = state.get("Health") or {}
    ports = (row.get("NetworkSettings") or {}).get("Ports") or {}
    return ContainerState(
        service=labels.get(COMPOSE_SERVICE_LABEL, ""),
        container=str(row.get("Name", "")).lstrip("/"),
        status=str(state.get("Status", "")),
        health=health.get("Status") or None,
        exit_code=int(state.get("ExitCode") or 0),
        health_log=tuple(
            _shortened((entry.get("Output") or "").strip())
            for entry in (health.get("Log") or [])[-_HEALTH_LOG_ENTRIES:]
        ),
        published={
            int(target.split("/")[0]): int(bindings[0]["HostPort"])
            for target, bindings in ports.items()
            if bindings
        },
        pid=int(state.get("Pid") or 0),
        health_checked_at=_epoch((health.get("Log") or [{}])[-1].get("End")),
    )


def _current(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Each service's newest container: the one compose made last is the service now.

    While `up` recreates a service (a changed config), its old container, stopped by compose
    and not yet removed, is listed beside the new one; judged in its place, its exit (0, from
    compose's SIGTERM) read as the service failing.
    """
    newest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        service = ((row.get("Config") or {}).get("Labels") or {}).get(COMPOSE_SERVICE_LABEL, "")
        seen = newest.get(service)
        if seen is None or (_epoch(row.get("Created")) or 0) > (_epoch(seen.get("Created")) or 0):
            newest[service] = row
    return list(newest.values())


def _shortened(output: str) -> str:
    """A healthcheck's output cut to _HEALTH_OUTPUT_CHARS, keeping both ends.

    The start holds the verdict and the cause, usually; the end a probe tool's own error line.
    """
    if len(output) <= _HEALTH_OUTPUT_CHARS:
        return output
    head = _HEALTH_OUTPUT_CHARS * 2 // 3
    return output[:head] + " … " + output[-(_HEALTH_OUTPUT_CHARS - head - 3) :]


def _epoch(stamp: str | None) -> float | None:
    """Docker's RFC 3339 time with nanoseconds ('2026-12-03T16:25:01.123456789Z') as epoch s."""
    if not stamp:
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", stamp)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    moment = datetime.fromisoformat(f"{whole}{'+00:00' if zone == 'Z' else zone}")
    return moment.timestamp() + float(f"0.{fraction or '0'}")


class Engine:
    """One Docker engine, optionally bound to one compose project.

    Args:
        client_call: how to call the docker CLI (`["docker"]`; a wrapper if the project uses
            one), as python-on-whales' `client_call`.
        binding: the compose project to act on; engine-wide calls work without one.
    """

    def __init__(
        self, client_call: Sequence[str] = ("docker",), binding: ComposeBinding | None = None
    ) -> None:
        self.client_call = tuple(client_call)
        self.binding = binding

    @functools.cached_property
    def docker(self) -> DockerClient:
        """python-on-whales' client for this engine (and project), made on first use."""
        from python_on_whales import DockerClient

        if self.binding is None:
            return DockerClient(client_call=list(self.client_call))
        return DockerClient(
            client_call=list(self.client_call),
            compose_files=list(self.binding.files),
            compose_project_name=self.binding.project_name,
            compose_profiles=list(self.binding.profiles),
            compose_env_files=list(self.binding.env_files),
            compose_project_directory=self.binding.project_directory,
        )

    def _bound(self) -> ComposeBinding:
        if self.binding is None:
            raise TypeError("this call needs an Engine bound to a compose project")
        return self.binding

    # -- the engine ----------------------------------------------------------------------

    def server_version(self) -> str:
        """The engine's version (raises EngineError when no engine answers)."""
        return _run([*self.client_call, "version", "--format", "{{.Server.Version}}"]).strip()

    def compose_version(self) -> str:
        """`docker compose version`."""
        return _run([*self.client_call, "compose", "version"]).strip()

    def cgroup_driver(self) -> str:
        """The engine's cgroup driver (cgroupfs or systemd)."""
        with _translated():
            return str(self.docker.info().cgroup_driver)

    def image_tags(self) -> set[str]:
        """Every tag of every local image.

        One formatted listing: python-on-whales inspects each listed image and parses the
        result into its models, 165-200 ms for 13 images against 26 ms (2-core machine,
        calibration 170 ms); every session's preflight waits for this.
        """
        listing = _run([*self.client_call, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
        return {line for line in listing.split() if not line.endswith(":<none>")}

    def image_ids(self, references: Iterable[str]) -> dict[str, str]:
        """Image reference -> image id, for local images (one formatted inspect, as above)."""
        refs = sorted(set(references))
        if not refs:
            return {}
        ids = _run([*self.client_call, "image", "inspect", "--format", "{{.Id}}", *refs]).split()
        return dict(zip(refs, ids, strict=True))

    def endpoint(self, env: Mapping[str, str] | None = None) -> str:
        """The engine's endpoint as the docker CLI picks it ("" for the default socket).

        DOCKER_HOST first, then the current context (which honours DOCKER_CONTEXT).
        """
        env = os.environ if env is None else env
        endpoint = env.get("DOCKER_HOST", "")
        if not endpoint:
            try:
                endpoint = _run(
                    [*self.client_call, "context", "inspect", "--format", CONTEXT_HOST_FORMAT]
                ).strip()
            except EngineError:
                endpoint = ""
            if endpoint == "<no value>":  # a context without a docker endpoint
                endpoint = ""
        return endpoint

    def address(self, env: Mapping[str, str] | None = None) -> str:
        """The engine's host as its endpoint names it: loopback for a local socket."""
        return host_of_endpoint(self.endpoint(env))

    def is_local(self, env: Mapping[str, str] | None = None) -> bool:
        """The engine runs on this machine behind a unix socket (its cgroups are ours)."""
        endpoint = self.endpoint(env)
        return not endpoint or endpoint.startswith("unix://")

    # -- resources by label (the sweep) --------------------------------------------------

    def labelled(self, kind: str, label: str = COMPOSE_PROJECT_LABEL) -> list[Resource]:
        """Every container, network or volume carrying `label`: one listing, one inspect.

        python-on-whales inspects each one in its own CLI call: for K2's minimal stack (10
        resources) 307 ms against 154 ms batched (median of 5, 2-core machine, calibration
        124 ms). The sweep runs this at every session start.
        """
        listing = {
            "container": ["ps", "-aq"],
            "network": ["network", "ls", "-q"],
            "volume": ["volume", "ls", "-q"],
        }[kind]
        refs = _run([*self.client_call, *listing, "--filter", f"label={label}"]).split()
        if not refs:
            return []
        try:
            found = json.loads(_run([*self.client_call, kind, "inspect", *refs]))
        except EngineError:
            return []  # Something vanished meanwhile (another run's teardown); ask again later.
        resources = []
        for item in found:
            if kind == "container":
                labels = (item.get("Config") or {}).get("Labels")
            else:
                labels = item.get("Labels")
            ref = item["Name"] if kind == "volume" else item["Id"]
            resources.append(Resource(kind, ref, dict(labels or {})))
        return resources

    def resources(self) -> list[Resource]:
        """Every compose-labelled container, network and volume on the engine.

        The three listings run at once: each is two CLI start-ups that mostly wait on the
        engine, and every session start (the sweep) waits for all of them.
        """
        kinds = ("container", "network", "volume")
        with ThreadPoolExecutor(max_workers=len(kinds)) as pool:
            listed = list(pool.map(self.labelled, kinds))
        return [resource for found in listed for resource in found]

    def remove(self, resources: Iterable[Resource]) -> None:
        """Containers first (they hold networks and volumes), then networks, then volumes.

        A resource already gone is fine: two runs starting together may sweep the same stack.
        """
        members = list(resources)
        for kind in ("container", "network", "volume"):
            refs = [r.ref for r in members if r.kind == kind]
            for ref in refs:
                argv = {
                    "container": ["rm", "-f", "-v", ref],
                    "network": ["network", "rm", ref],
                    "volume": ["volume", "rm", ref],
                }[kind]
                with contextlib.suppress(EngineError):
                    _run([*self.client_call, *argv])

    # -- the bound compose project -------------------------------------------------------

    def compose(self, subcommand: str | Sequence[str]) -> str:
        """Run a compose subcommand ("up -d", ["port", "db", "5432"]) for the project."""
        words = shlex.split(subcommand) if isinstance(subcommand, str) else list(subcommand)
        return _run(self._bound().argv(*words))

    def config(self) -> dict[str, Any]:
        """The resolved compose model (`docker compose config`), as the engine will see it."""
        model: dict[str, Any] = json.loads(_run(self._bound().argv("config", "--format", "json")))
        return model

    def observe(self, services: Iterable[str]) -> dict[str, ContainerState]:
        """Each service's container state now ('absent' when compose has not made it).

        One `docker ps` plus one batched `docker inspect` of the project's containers. For six
        containers (median of 10, 2-core machine, calibration 124 ms): 56 ms and 54 ms of CPU,
        against 188 ms (162 ms CPU) for python-on-whales' list with one inspect per container
        and 308 ms for `docker compose ps`. The waits poll this four times a second, so the
        difference is CPU the starting services get.
        """
        project = self._bound().project_name
        states = {name: ContainerState(name, "", "absent", None) for name in services}
        ids = _run(
            [*self.client_call, "ps", "-aq", "--filter", f"label={COMPOSE_PROJECT_LABEL}={project}"]
        ).split()
        if not ids:
            return states
        try:
            rows = json.loads(_run([*self.client_call, "container", "inspect", *ids]))
        except EngineError:
            return states  # A container vanished between the two calls; the next poll tells.
        for row in _current(rows):
            state = _state_of(row)
            if state.service in states:
                states[state.service] = state
        return states

    def container_events(self, actions: Sequence[str]) -> subprocess.Popen[str]:
        """`docker events` for the project's containers, one action per line, until stopped.

        The caller owns the process (see e2e_stack.wakeup). `health_status` matches each
        "health_status: <status>" (the engine matches that action by prefix).
        """
        project = self._bound().project_name
        argv = [
            *self.client_call,
            "events",
            "--filter",
            "type=container",
            "--filter",
            f"label={COMPOSE_PROJECT_LABEL}={project}",
            *(arg for action in actions for arg in ("--filter", f"event={action}")),
            "--format",
            "{{.Action}}",
        ]
        try:
            return subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except FileNotFoundError as exc:
            raise EngineError(f"{argv[0]!r} is not installed or not on PATH") from exc

    def logs(self, service: str, tail: int | None = None, since: datetime | None = None) -> str:
        """A service's log: the last `tail` lines, or everything since `since` (timestamped)."""
        with _translated():
            text = self.docker.compose.logs(
                services=[service],
                tail=None if tail is None else str(tail),
                since=None if since is None else since.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                timestamps=since is not None,
                no_log_prefix=True,
            )
        return str(text)

    def stats(self) -> dict[str, tuple[float, float]]:
        """Service -> (CPU %, memory MiB) of its running container, one `docker stats` call."""
        with _translated():
            containers = self.docker.compose.ps()
            if not containers:
                return {}
            service_of = {
                c.name: (c.config.labels or {}).get(COMPOSE_SERVICE_LABEL, c.name)
                for c in containers
            }
            return {
                service_of.get(stat.container_name, stat.container_name): (
                    float(stat.cpu_percentage or 0.0),
                    (stat.memory_used or 0) / 2**20,
                )
                for stat in self.docker.stats(containers)
            }

    def services_present(self) -> set[str]:
        """Services with a container in the project, whatever its state."""
        with _translated():
            return {
                (c.config.labels or {}).get(COMPOSE_SERVICE_LABEL, "")
                for c in self.docker.compose.ps(all=True)
            }

    def port_bindings(self) -> list[tuple[str, str, str]]:
        """(container, host address, host port) of every published port of the project."""
        with _translated():
            return [
                (container.name, binding.host_ip or "", binding.host_port or "")
                for container in self.docker.compose.ps()
                for bindings in (container.host_config.port_bindings or {}).values()
                for binding in bindings or []
            ]

    def restart(self, service: str) -> None:
        """Restart a service's container."""
        with _translated():
            self.docker.compose.restart([service])

    def kill(self, service: str, signal: str = "SIGKILL") -> None:
        """Send a signal to a service's container (SIGKILL by default)."""
        with _translated():
            self.docker.compose.kill([service], signal=signal)

    def stop(self, service: str) -> None:
        """Stop a service's container."""
        with _translated():
            self.docker.compose.stop([service])

    def start(self, service: str) -> None:
        """Start a service's stopped container."""
        with _translated():
            self.docker.compose.start([service])

    def recreate(self, service: str) -> None:
        """Create `service`'s container again as the bound files now describe it, alone.

        Its dependencies are left as they are; compose re-creates only when the
        configuration differs from the running container's.
        """
        with _translated():
            self.docker.compose.up([service], detach=True, dependencies=False, quiet=True)

    def pause(self, service: str) -> None:
        """Freeze a service's processes."""
        with _translated():
            self.docker.compose.pause([service])

    def unpause(self, service: str) -> None:
        """Thaw a paused service."""
        with _translated():
            self.docker.compose.unpause([service])

    def _container_of(self, service: str) -> Any:
        with _translated():
            found = [
                c
                for c in self.docker.compose.ps(all=True)
                if (c.config.labels or {}).get(COMPOSE_SERVICE_LABEL) == service
            ]
        if not found:
            raise EngineError(f"service {service!r} has no container")
        return found[0]

    def disconnect(self, service: str) -> list[str]:
        """Cut a service's container from every network it is on; the networks' names."""
        container = self._container_of(service)
        networks = sorted((container.network_settings.networks or {}).keys())
        with _translated():
            for network in networks:
                self.docker.network.disconnect(network, container)
        return networks

    def reconnect(self, service: str, networks: Sequence[str]) -> None:
        """Put a service's container back on `networks`, reachable by its service name."""
        container = self._container_of(service)
        with _translated():
            for network in networks:
                self.docker.network.connect(network, container, alias=service)

    def start_created(self, containers: Sequence[str]) -> None:
        """Start containers compose has created (one `docker start`; a running one stays as is).

        The engine answers a start of a running container with "not modified", so compose's
        own start of it later in the same `up` does nothing.
        """
        if containers:
            _run([*self.client_call, "start", *containers])

    def check_in(self, container: str, argv: Sequence[str], timeout_s: float) -> bool:
        """Whether `argv` exits 0 inside `container`, as the engine runs a healthcheck there.

        `docker exec` uses the container's user and environment, as a healthcheck does. Past
        `timeout_s` (or if the container is not running) the answer is False.
        """
        try:
            proc = subprocess.run(
                [*self.client_call, "exec", container, *argv],
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        except (subprocess.TimeoutExpired, OSError):
            return False
        return proc.returncode == 0

    def execute(self, service: str, argv: Sequence[str]) -> str:
        """Run a command in a service's container; its output."""
        with _translated():
            return str(self.docker.compose.execute(service, list(argv), tty=False))


def host_of_endpoint(endpoint: str) -> str:
    """The host part of a docker endpoint (tcp://h:2376, ssh://u@h), loopback for a socket."""
    match = re.match(r"^(?:tcp|ssh|https?)://(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+)", endpoint)
    return match.group(1).strip("[]") if match else LOOPBACK
