"""Remove the stacks of earlier runs that died before their teardown (SIGKILL, CI cancel).

Selection is deliberately narrow: a project is removed only when its name has our prefix,
its resources carry our run labels, it is not marked to keep, it was started on this host,
and the process that started it is gone. Anything else is somebody else's and stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from e2e_stack.engine import Engine, Resource
from e2e_stack.identity import LabelKeys, RunIdentity, pid_is_alive


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
    prefix: str,
    keys: LabelKeys,
    alive: Callable[[int, str], bool] = pid_is_alive,
) -> list[Verdict]:
    """Decide per project of ours whether its run is dead; pure, so it is unit-tested."""
    by_project: dict[str, list[Resource]] = {}
    for resource in resources:
        if resource.project.startswith(f"{prefix}-"):
            by_project.setdefault(resource.project, []).append(resource)
    verdicts = []
    for project, members in sorted(by_project.items()):
        labelled = [r for r in members if keys.run_id in r.labels]
        owner = RunIdentity.from_labels(dict(labelled[0].labels), keys) if labelled else None
        if owner is None:
            verdict = Verdict(project, False, "no run labels: not started by this layer")
        elif any(r.labels.get(keys.keep) == "true" for r in labelled):
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


def leftovers(engine: Engine, project: str) -> dict[str, list[str]]:
    """A project's containers, networks and volumes by kind: all empty after a clean teardown."""
    found: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}
    for resource in engine.resources():
        if resource.project == project:
            found[f"{resource.kind}s"].append(resource.ref)
    return found


def sweep(engine: Engine, host: str, prefix: str, keys: LabelKeys) -> list[Verdict]:
    """Remove dead runs' stacks; return every verdict so the caller can report them."""
    verdicts = judge(engine.resources(), host, prefix, keys)
    for verdict in verdicts:
        if verdict.remove:
            engine.remove(verdict.resources)
    return verdicts


def remove_run(engine: Engine, run_id: str, prefix: str, keys: LabelKeys) -> list[str]:
    """Remove every stack of run `run_id` left on `engine`, unless kept; their project names.

    For the xdist controller once its workers are gone: they share its run id, and one that
    was interrupted (or killed) before its teardown leaves its stack behind.
    """
    mine = [
        resource
        for resource in engine.resources()
        if resource.project.startswith(f"{prefix}-")
        and resource.labels.get(keys.run_id) == run_id
        and resource.labels.get(keys.keep) != "true"
    ]
    engine.remove(mine)
    return sorted({resource.project for resource in mine})
