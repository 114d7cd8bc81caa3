"""The one carrier of a compose project: built from pytest-docker's fixture values.

`docker_compose_command`, `docker_compose_file` and `docker_compose_project_name` say what
runs; `ComposeProject.from_fixtures` turns exactly those into the project that is started,
waited on, inspected and torn down, so overriding any of them changes every step at once.
The compose files stay the source of truth for services, ports, profiles and credentials;
this module only asks compose and reads its answers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import shlex
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from e2e_stack.engine import LOOPBACK, ComposeBinding, Engine
from e2e_stack.readiness import ContainerState

# A port a variable pins before `up` is picked below the kernel's and Docker's ephemeral
# range, so no ephemeral port handed out meanwhile takes it.
_PICK_RANGE: Final = (20000, 32767)
# Global compose options the python-on-whales client can mirror; anything else in the command
# would make what runs differ from what is watched.
_MIRRORED = {"--env-file": "env_files", "--project-directory": "project_directory"}
_PASSED = {"--ansi", "--progress", "--parallel", "--compatibility"}
_OWNED_BY_FIXTURES = {
    "-f": "docker_compose_file",
    "--file": "docker_compose_file",
    "-p": "docker_compose_project_name",
    "--project-name": "docker_compose_project_name",
    "--profile": "the e2e_profile setting",
}


class CommandError(ValueError):
    """`docker_compose_command` cannot be honoured; the message names the fix."""


def free_port(host: str = LOOPBACK, rng: random.Random | None = None, attempts: int = 200) -> int:
    """A port that `host` can bind right now, from outside the ephemeral range."""
    rng = rng or random.Random()
    for _ in range(attempts):
        port = rng.randint(*_PICK_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host} in {_PICK_RANGE} after {attempts} tries")


@dataclass(frozen=True)
class ComposeCommand:
    """`docker_compose_command` taken apart: the CLI to call and the global compose options."""

    client_call: tuple[str, ...]
    options: tuple[str, ...]
    env_files: tuple[Path, ...]
    project_directory: Path | None

    @classmethod
    def parse(cls, text: str, root: Path) -> ComposeCommand:
        """Read e.g. `docker compose --env-file x.env`; refuse what the layer cannot mirror."""
        words = shlex.split(text)
        if "compose" not in words:
            raise CommandError(
                f"docker_compose_command {text!r} is not compose v2 (`docker compose ...`): "
                "this plugin needs the compose v2 CLI"
            )
        at = words.index("compose")
        client, rest = tuple(words[:at]), words[at + 1 :]
        options: list[str] = []
        mirrored: dict[str, list[str]] = {"env_files": [], "project_directory": []}
        i = 0
        while i < len(rest):
            word = rest[i]
            name, _, inline = word.partition("=")
            if name in _OWNED_BY_FIXTURES:
                raise CommandError(
                    f"docker_compose_command {text!r} sets {name}: set it through "
                    f"{_OWNED_BY_FIXTURES[name]} instead, so the run and the wait agree"
                )
            if name not in _MIRRORED and name not in _PASSED:
                raise CommandError(
                    f"docker_compose_command {text!r}: option {word!r} is not understood "
                    f"here; supported: {', '.join(sorted({*_MIRRORED, *_PASSED}))}"
                )
            value = inline if inline else (rest[i + 1] if i + 1 < len(rest) else "")
            if not value:
                raise CommandError(f"docker_compose_command {text!r}: {name} needs a value")
            i += 1 if inline else 2
            if name in _MIRRORED:
                # Absolute, so the CLI (run from any directory) and the client read one file.
                path = Path(value)
                value = str(path if path.is_absolute() else root / path)
                mirrored[_MIRRORED[name]].append(value)
            options += [name, value]
        directory = mirrored["project_directory"]
        return cls(
            client_call=client or ("docker",),
            options=tuple(options),
            env_files=tuple(Path(p) for p in mirrored["env_files"]),
            project_directory=Path(directory[-1]) if directory else None,
        )


@dataclass(frozen=True)
class ComposeProject:
    """A named compose project: the command, files, name and active profiles it runs with.

    `overlays` are files the plugin generates (the run's labels) applied after the user's.
    """

    command: ComposeCommand
    files: tuple[Path, ...]
    name: str
    profiles: tuple[str, ...] = ()
    overlays: tuple[Path, ...] = ()
    host: str = LOOPBACK
    # The model across every profile, when the caller already has it (saves a compose call).
    all_profiles_model: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_fixtures(
        cls,
        docker_compose_command: str,
        docker_compose_file: str | Sequence[str],
        docker_compose_project_name: str,
        root: Path,
        **more: Any,
    ) -> ComposeProject:
        """The project pytest-docker's three fixtures describe (a string file is one file)."""
        files = (
            [docker_compose_file] if isinstance(docker_compose_file, str) else docker_compose_file
        )
        return cls(
            command=ComposeCommand.parse(docker_compose_command, root),
            files=tuple(Path(f) if Path(f).is_absolute() else root / f for f in files),
            name=docker_compose_project_name,
            **more,
        )

    @property
    def compose_files(self) -> list[Path]:
        """Every file compose reads, the user's first, generated overlays last."""
        return [*self.files, *self.overlays]

    def with_profiles(self, profiles: tuple[str, ...]) -> ComposeProject:
        """The same project seen with other active profiles (itself if the same)."""
        return self if profiles == self.profiles else dataclasses.replace(self, profiles=profiles)

    def with_overlay(self, path: Path) -> ComposeProject:
        """The same project with one more generated overlay file."""
        return dataclasses.replace(self, overlays=(*self.overlays, path))

    @functools.cached_property
    def engine(self) -> Engine:
        """The engine adapter bound to this project."""
        return Engine(
            self.command.client_call,
            ComposeBinding(
                client_call=self.command.client_call,
                compose_options=self.command.options,
                files=tuple(self.compose_files),
                project_name=self.name,
                profiles=self.profiles,
                env_files=self.command.env_files,
                project_directory=self.command.project_directory,
            ),
        )

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """The resolved compose model for the active profiles."""
        return self.engine.config()

    def everything(self) -> dict[str, Any]:
        """The model with every profile active: all services the files can ever start."""
        if self.all_profiles_model is None:
            # "*" activates every profile (compose's own spelling).
            return self.with_profiles(("*",)).config
        return self.all_profiles_model

    def all_profiles(self) -> list[str]:
        """Every profile some service of the files names."""
        return sorted(
            {
                p
                for spec in self.everything()["services"].values()
                for p in spec.get("profiles") or []
            }
        )

    def service_env(self, service: str) -> dict[str, str]:
        """A service's resolved environment: where tests read credentials from."""
        env: dict[str, str] = self.config["services"][service].get("environment") or {}
        return env

    def published(self) -> list[tuple[str, int]]:
        """(service, container port) of every port the active profiles publish."""
        return [
            (service, int(port["target"]))
            for service, spec in sorted(self.config["services"].items())
            for port in spec.get("ports") or []
        ]

    def host_ports(
        self, states: Mapping[str, ContainerState] | None = None
    ) -> dict[tuple[str, int], int]:
        """(service, container port) -> host port for every published port, in one call.

        `states`, when the caller has just observed the services, saves that call.
        """
        if states is None:
            states = self.engine.observe(sorted(self.config["services"]))
        return {
            (service, target): host
            for service, state in states.items()
            for target, host in state.published.items()
        }

    def addresses(self) -> dict[tuple[str, int], str]:
        """(service, container port) -> 'host:port' a client connects to (see `Deployment`)."""
        return {key: f"{self.host}:{port}" for key, port in self.host_ports().items()}

    def host_port(self, service: str, container_port: int) -> int:
        """The port published for a service's container port (reach it on `host`)."""
        port = self.host_ports().get((service, container_port))
        if port is None:
            raise LookupError(f"{service}:{container_port} is not published in {self.name}")
        return port

    def cli(self) -> str:
        """The compose command line a developer can paste to reach this project."""
        files = " ".join(f"-f {shlex.quote(str(path))}" for path in self.compose_files)
        prefix = shlex.join([*self.command.client_call, "compose", *self.command.options])
        return f"{prefix} {files} -p {self.name}"


def compose_command(env_file: Path) -> str:
    """The `docker_compose_command` of a run: compose v2 with the run's variables file."""
    return f'docker compose --env-file "{env_file}"'


def write_env_file(path: Path, variables: Mapping[str, str]) -> Path:
    """Write a compose variables file, unless one exists (a reused stack keeps its values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("".join(f"{name}={value}\n" for name, value in sorted(variables.items())))
    return path


def labels_overlay(
    model: Mapping[str, Any],
    labels: Mapping[str, str],
    cgroup_parent: str | None = None,
) -> dict[str, Any]:
    """A compose overlay putting `labels` on every service, network and volume of `model`.

    With `cgroup_parent`, every service's containers also go into that cgroup (--e2e-cpus).
    """
    networks = set(model.get("networks") or {}) | {"default"}
    extra = {"cgroup_parent": cgroup_parent} if cgroup_parent else {}
    return {
        "services": {
            name: {"labels": dict(labels), **extra} for name in model.get("services") or {}
        },
        "networks": {name: {"labels": dict(labels)} for name in sorted(networks)},
        "volumes": {name: {"labels": dict(labels)} for name in model.get("volumes") or {}},
    }


def overlay_labels(path: Path) -> dict[str, str] | None:
    """The labels an earlier `labels_overlay` file put on its services; None if there is none.

    A reused stack keeps the labels of the run that made it: new ones would differ from its
    containers' and make compose recreate the whole stack when the run starts another profile.
    """
    try:
        services = json.loads(path.read_text()).get("services") or {}
        labels = next(iter(services.values()))["labels"]
    except (OSError, ValueError, AttributeError, StopIteration, KeyError, TypeError):
        return None
    return {str(key): str(value) for key, value in labels.items()} or None


def write_overlay(path: Path, overlay: Mapping[str, Any]) -> Path:
    """Write a generated overlay (JSON is YAML) where compose can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(overlay, indent=2) + "\n")
    return path
