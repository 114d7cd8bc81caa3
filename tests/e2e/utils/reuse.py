"""`--e2e-reuse`: find a running stack built from exactly this compose config and these images.

The hash covers the resolved compose model for the profile (not the files' text, so a
comment change does not matter and a changed variable does) and the id of every image it
runs (so a rebuilt image is never served by a stale container).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from python_on_whales import DockerClient

from tests.e2e.utils.compose_project import KAFKA_PORT_VARIABLE, ComposeProject
from tests.e2e.utils.health_wait import observe
from tests.e2e.utils.readiness import Verdict, strategies
from tests.e2e.utils.run_identity import PROJECT_PREFIX


def _without_volatile(model: dict[str, Any]) -> dict[str, Any]:
    """Drop what differs between two equivalent stacks: the project name, the Kafka port."""
    stripped = json.loads(json.dumps(model))
    stripped.pop("name", None)
    for spec in (stripped.get("services") or {}).values():
        env = spec.get("environment") or {}
        env.pop(KAFKA_PORT_VARIABLE.removeprefix("K2_"), None)
        for port in spec.get("ports") or []:
            port.pop("published", None)
    return dict(stripped)


def config_hash(model: dict[str, Any], docker: DockerClient) -> str:
    """Hash of the effective model and its images' ids."""
    images = sorted({spec["image"] for spec in model["services"].values() if "image" in spec})
    ids = (
        {
            image.repo_tags[0] if image.repo_tags else image.id: image.id
            for image in docker.image.inspect(images)
        }
        if images
        else {}
    )
    payload = json.dumps({"model": _without_volatile(model), "images": ids}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def reuse_project_name(digest: str, worker: str | None = None) -> str:
    """The stable project name of the reusable stack for one config hash (and xdist worker).

    Each worker keeps a stack of its own, reused or not: tests stop and restart services.
    """
    return f"{PROJECT_PREFIX}-reuse-{digest}" + (f"-{worker}" if worker else "")


def all_ready(project: ComposeProject) -> bool:
    """True when every service of the project's profiles is ready right now."""
    chosen = strategies(project.config)
    states = observe(project.docker, sorted(chosen))
    return all(chosen[name].judge(state)[0] is Verdict.READY for name, state in states.items())
