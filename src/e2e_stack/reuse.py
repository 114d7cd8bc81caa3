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
from typing import Any

from e2e_stack.engine import Engine
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
    """
    chosen = strategies(project.config)
    states = project.engine.observe(sorted(chosen))
    if all(chosen[name].judge(state)[0] is Verdict.READY for name, state in states.items()):
        return states
    return None
