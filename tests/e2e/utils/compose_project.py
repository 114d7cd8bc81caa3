"""One compose project of the K2 stack: which files, name, profiles and variables it runs with.

The compose files are the source of truth for services, ports and credentials; this module
only says which project to ask and reads the answers from `docker compose config` and
`docker compose port`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import random
import re
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient

from tests.e2e.utils.health_wait import observe

COMPOSE_FILES = ("docker-compose.v1.yml", "docker-compose.e2e.override.yml")
ALL_PROFILES = ("minimal", "full")
KAFKA_PORT_VARIABLE = "K2_KAFKA_HOST_PORT"
# Kafka's host port is picked before `up` (the broker must advertise it). Pick it below the
# kernel's and Docker's ephemeral range, so no ephemeral port handed out meanwhile takes it.
_PICK_RANGE = (20000, 32767)


def free_loopback_port(rng: random.Random | None = None, attempts: int = 200) -> int:
    """A port that 127.0.0.1 can bind right now, from outside the ephemeral range."""
    rng = rng or random.Random()
    for _ in range(attempts):
        port = rng.randint(*_PICK_RANGE)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {_PICK_RANGE} after {attempts} tries")


def engine_host(env: dict[str, str] | None = None) -> str:
    """The address published ports are reached on: loopback, unless the engine is remote.

    Follows DOCKER_HOST first, then the current docker context, as the docker CLI does.
    """
    env = dict(os.environ) if env is None else env
    endpoint = env.get("DOCKER_HOST", "")
    if not endpoint:
        # Inspects the current context, which honours DOCKER_CONTEXT like every docker call.
        proc = subprocess.run(
            ["docker", "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        endpoint = proc.stdout.strip() if proc.returncode == 0 else ""
    match = re.match(r"^(?:tcp|ssh|https?)://(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+)", endpoint)
    return match.group(1).strip("[]") if match else "127.0.0.1"


@dataclass(frozen=True)
class ComposeProject:
    """A named compose project over the repo's compose files, with its own variables file.

    `extra_files` are generated overlays (the run's labels) applied after the repo's files.
    """

    root: Path
    name: str
    profiles: tuple[str, ...]
    env_file: Path
    extra_files: tuple[Path, ...] = ()
    host: str = "127.0.0.1"
    # The whole model across every profile, when the caller already has it (saves a call).
    all_profiles_model: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def create(
        cls,
        root: Path,
        name: str,
        profiles: tuple[str, ...],
        env_dir: Path,
        labels: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        everything: dict[str, Any] | None = None,
        cgroup_parent: str | None = None,
        cpuset: str | None = None,
    ) -> ComposeProject:
        """Write the project's variables file (and labels overlay) and describe it.

        Kafka's host port is taken from the environment when pinned there, else picked free;
        an existing variables file (a reused stack) keeps its port. `everything` is the
        all-profiles model if the caller has it already.
        """
        env_dir.mkdir(parents=True, exist_ok=True)
        env_file = env_dir / f"{name}.env"
        if not env_file.exists():
            port = os.environ.get(KAFKA_PORT_VARIABLE) or str(free_loopback_port())
            env_file.write_text(f"{KAFKA_PORT_VARIABLE}={port}\n")
        project = cls(
            root=root,
            name=name,
            profiles=profiles,
            env_file=env_file,
            host=host,
            all_profiles_model=everything,
        )
        if labels:
            everything = project.everything()
            overlay = env_dir / f"{name}.labels.json"
            overlay.write_text(
                json.dumps(labels_overlay(everything, labels, cgroup_parent, cpuset), indent=2)
            )
            project = dataclasses.replace(
                project, extra_files=(overlay,), all_profiles_model=everything
            )
        return project

    def everything(self) -> dict[str, Any]:
        """The model with every profile active: all services the files can ever start."""
        if self.all_profiles_model is None:
            return self.with_profiles(ALL_PROFILES).config
        return self.all_profiles_model

    def with_profiles(self, profiles: tuple[str, ...]) -> ComposeProject:
        """The same project seen with other active profiles (itself, models cached, if the same)."""
        return self if profiles == self.profiles else dataclasses.replace(self, profiles=profiles)

    @property
    def compose_files(self) -> list[str | Path]:
        """Absolute paths of the compose files, base first, generated overlays last."""
        return [*(self.root / name for name in COMPOSE_FILES), *self.extra_files]

    @functools.cached_property
    def docker(self) -> DockerClient:
        """A python-on-whales client bound to this project."""
        return DockerClient(
            compose_files=self.compose_files,
            compose_project_name=self.name,
            compose_profiles=list(self.profiles),
            compose_env_files=[self.env_file],
            compose_project_directory=self.root,
        )

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """The resolved compose model (`docker compose config`), as the engine will see it."""
        model: dict[str, Any] = self.docker.compose.config(return_json=True)
        return model

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

    def host_ports(self) -> dict[tuple[str, int], int]:
        """(service, container port) -> host port for every published port, in one call."""
        states = observe(self.docker, sorted(self.config["services"]))
        return {
            (service, target): host
            for service, state in states.items()
            for target, host in state.published.items()
        }

    def host_port(self, service: str, container_port: int) -> int:
        """The port published for a service's container port (reach it on `host`)."""
        port = self.host_ports().get((service, container_port))
        if port is None:
            raise LookupError(f"{service}:{container_port} is not published in {self.name}")
        return port

    def up(self) -> None:
        """Start the profiles' services and wait until every one is healthy."""
        self.docker.compose.up(detach=True, wait=True, quiet=True)

    def down(self) -> None:
        """Remove the project's containers, networks and volumes, whatever state they are in."""
        self.docker.compose.down(volumes=True, remove_orphans=True, quiet=True)


def labels_overlay(
    model: dict[str, Any],
    labels: dict[str, str],
    cgroup_parent: str | None = None,
    cpuset: str | None = None,
) -> dict[str, Any]:
    """A compose overlay putting `labels` on every service, network and volume of `model`.

    With `cgroup_parent` or `cpuset`, every service's containers also go into that cgroup
    or onto those CPUs (--e2e-cpus).
    """
    networks = set(model.get("networks") or {}) | {"default"}
    extra = {"cgroup_parent": cgroup_parent} if cgroup_parent else {}
    if cpuset:
        extra["cpuset"] = cpuset
    return {
        "services": {name: {"labels": labels, **extra} for name in model.get("services") or {}},
        "networks": {name: {"labels": labels} for name in sorted(networks)},
        "volumes": {name: {"labels": labels} for name in model.get("volumes") or {}},
    }
