"""`--e2e-reuse`: find a running stack built from exactly this compose config and these images.

The hash covers the resolved compose model of every profile, resolved without the run's own
variables file (those values differ per run by design), and the id of every image it runs (so
a rebuilt image is never served by a stale container). A comment change does not matter; a
changed variable or a rebuilt image does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from e2e_stack.engine import Engine
from e2e_stack.preflight import active
from e2e_stack.project import ComposeProject
from e2e_stack.readiness import ContainerState, Verdict, strategies


def _without_volatile(model: Mapping[str, Any]) -> dict[str, Any]:
    """Drop what differs between two equivalent stacks: the project name, published ports."""
    stripped: dict[str, Any] = json.loads(json.dumps(model))
    stripped.pop("name", None)
    for spec in (stripped.get("services") or {}).values():
        for port in spec.get("ports") or []:
            port.pop("published", None)
    return stripped


def config_hash(model: Mapping[str, Any], engine: Engine) -> str:
    """Hash of the effective model and its images' ids."""
    images = {spec["image"] for spec in model["services"].values() if "image" in spec}
    payload = json.dumps(
        {"model": _without_volatile(model), "images": engine.image_ids(images)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def reuse_project_name(prefix: str, digest: str, worker: str | None = None) -> str:
    """The stable project name of the reusable stack for one config hash (and xdist worker).

    Each worker keeps a stack of its own, reused or not: tests stop and restart services.
    """
    return f"{prefix}-reuse-{digest}" + (f"-{worker}" if worker else "")


def ready_states(project: ComposeProject) -> dict[str, ContainerState] | None:
    """Every service's state when all of the project's profiles are ready now, else None.

    The caller adopts the stack with these states (its ports), so reuse observes it once.
    The project's own model (a compose call, cached on the project for later users) and the
    look at its containers (two docker calls) are independent and mostly wait on the CLI:
    they run at once, on the services the all-profiles model activates. Any service the
    model names that the look did not find makes the stack not reusable.
    """
    everything = project.everything()
    services = sorted(
        name for name, spec in everything["services"].items() if active(spec, project.profiles)
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        model = pool.submit(lambda: project.config)
        states = project.engine.observe(services)
        chosen = strategies(model.result())
    judged = {name: states.get(name) for name in chosen}
    if all(
        state is not None and chosen[name].judge(state)[0] is Verdict.READY
        for name, state in judged.items()
    ):
        return {name: state for name, state in judged.items() if state is not None}
    return None
