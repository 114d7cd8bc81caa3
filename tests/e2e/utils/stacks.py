"""Throwaway stacks for tests of the stack machinery itself, beside the session's stack."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from e2e_stack import ComposeProject, StackManager, free_port
from e2e_stack.manager import DEFAULT_CLEANUP, DEFAULT_SETUP, growth_order
from e2e_stack.project import labels_overlay, write_env_file, write_overlay
from e2e_stack.state import RunState
from tests.e2e.k2_plugin import KAFKA_PORT_VARIABLE


def throwaway_stack(
    root: Path, state: RunState, tmp_path: Path, broken: Mapping[str, Any] | None = None
) -> StackManager:
    """A stack of this run (labelled, so the sweep covers it), with an optional overlay."""
    name = f"{state.identity.project_name(state.settings.project_prefix)}-t{uuid.uuid4().hex[:4]}"
    env_file = write_env_file(tmp_path / "stack.env", {KAFKA_PORT_VARIABLE: str(free_port())})
    project = ComposeProject.from_fixtures(
        f'docker compose --env-file "{env_file}"',
        [str(path) for path in state.settings.compose_files],
        name,
        root,
    )
    everything = project.everything()
    labels = labels_overlay(everything, state.identity.labels(state.keys))
    project = project.with_overlay(write_overlay(tmp_path / "labels.json", labels))
    if broken is not None:
        project = project.with_overlay(write_overlay(tmp_path / "broken.json", broken))
    return StackManager(project, DEFAULT_SETUP, DEFAULT_CLEANUP, growth_order(everything))
