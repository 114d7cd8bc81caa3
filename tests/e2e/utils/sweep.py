"""Remove the stacks of earlier runs that died before their teardown (SIGKILL, CI cancel).

Selection is deliberately narrow: a project is removed only when its name has our prefix,
its resources carry our run labels, it is not marked to keep, it was started on this host,
and the process that started it is gone. Anything else is somebody else's and stays.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from python_on_whales import DockerClient
from python_on_whales.exceptions import (
    DockerException,
    NoSuchContainer,
    NoSuchNetwork,
    NoSuchVolume,
)
from python_on_whales.utils import run

from tests.e2e.utils.run_identity import (
    LABEL_KEEP,
    LABEL_RUN_ID,
    PROJECT_PREFIX,
    RunIdentity,
    pid_is_alive,
)

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


@dataclass(frozen=True)
class Resource:
    """A container, network or volume as the sweep sees it."""

    kind: str  # "container", "network" or "volume"
    ref: str
    labels: dict[str, str]

    @property
    def project(self) -> str:
        """Its compose project name ("" if it has none)."""
        return self.labels.get(COMPOSE_PROJECT_LABEL, "")


@dataclass
class Verdict:
    """What the sweep decided for one project, and why (shown to the user)."""

    project: str
    remove: bool
    reason: str
    resources: list[Resource] = field(default_factory=list)


def judge(
    resources: Iterable[Resource],
    host: str,
    alive: Callable[[int, str], bool] = pid_is_alive,
) -> list[Verdict]:
    """Decide per project of ours whether its run is dead; pure, so it is unit-tested."""
    by_project: dict[str, list[Resource]] = {}
    for resource in resources:
        if resource.project.startswith(f"{PROJECT_PREFIX}-"):
            by_project.setdefault(resource.project, []).append(resource)
    verdicts = []
    for project, members in sorted(by_project.items()):
        labelled = [r for r in members if LABEL_RUN_ID in r.labels]
        owner = RunIdentity.from_labels(labelled[0].labels) if labelled else None
        if owner is None:
            verdict = Verdict(project, False, "no run labels: not started by this layer")
        elif any(r.labels.get(LABEL_KEEP) == "true" for r in labelled):
            verdict = Verdict(project, False, "kept on purpose (--e2e-keep/--e2e-reuse)")
        elif owner.host != host:
            verdict = Verdict(project, False, f"started on host {owner.host}, not this one")
        elif alive(owner.pid, owner.pid_start):
            verdict = Verdict(project, False, f"its run (pid {owner.pid}) is still alive")
        else:
            verdict = Verdict(project, True, f"its run (pid {owner.pid}) is gone")
        verdict.resources = members
        verdicts.append(verdict)
    return verdicts


def _labelled(docker: DockerClient, kind: str) -> list[Resource]:
    """Every compose-labelled resource of one kind: one listing, one batched inspect."""
    base = [*docker.client_config.docker_cmd]
    listing = {
        "container": ["ps", "-aq"],
        "network": ["network", "ls", "-q"],
        "volume": ["volume", "ls", "-q"],
    }[kind]
    refs = str(run([*base, *listing, "--filter", f"label={COMPOSE_PROJECT_LABEL}"])).split()
    if not refs:
        return []
    try:
        found = json.loads(str(run([*base, kind, "inspect", *refs])))
    except DockerException:
        return []  # Something vanished meanwhile (another run's teardown); sweep next time.
    resources = []
    for item in found:
        if kind == "container":
            labels = (item.get("Config") or {}).get("Labels")
        else:
            labels = item.get("Labels")
        ref = item["Name"] if kind == "volume" else item["Id"]
        resources.append(Resource(kind, ref, dict(labels or {})))
    return resources


def list_resources(docker: DockerClient) -> list[Resource]:
    """Every compose-labelled container, network and volume on the engine."""
    return [r for kind in ("container", "network", "volume") for r in _labelled(docker, kind)]


def leftovers(docker: DockerClient, project: str) -> dict[str, list[str]]:
    """A project's containers, networks and volumes by kind: all empty after a clean teardown."""
    found: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    for resource in list_resources(docker):
        if resource.project == project:
            found[f"{resource.kind}s"].append(resource.ref)
    return found


def remove(docker: DockerClient, resources: list[Resource]) -> None:
    """Containers first (they hold the networks and volumes), then networks, then volumes.

    One at a time, and a resource already gone is fine: two runs starting together may
    sweep the same dead stack.
    """
    removers: dict[str, Callable[[str], object]] = {
        "container": lambda ref: docker.container.remove(ref, force=True, volumes=True),
        "network": docker.network.remove,
        "volume": docker.volume.remove,
    }
    for kind in ("container", "network", "volume"):
        for resource in resources:
            if resource.kind == kind:
                with contextlib.suppress(NoSuchContainer, NoSuchNetwork, NoSuchVolume):
                    removers[kind](resource.ref)


def sweep(docker: DockerClient, host: str) -> list[Verdict]:
    """Remove dead runs' stacks; return every verdict so the caller can report them."""
    verdicts = judge(list_resources(docker), host)
    for verdict in verdicts:
        if verdict.remove:
            remove(docker, verdict.resources)
    return verdicts
