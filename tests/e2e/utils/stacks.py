"""Throwaway stacks for tests of the stack machinery itself, beside the session's stack."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from e2e_stack import StackManager
from e2e_stack.manager import labelled_stack
from e2e_stack.state import RunState
from tests.e2e.k2_plugin import stack_variables


def throwaway_stack(
    root: Path,
    state: RunState,
    tmp_path: Path,
    publish_address: str,
    broken: Mapping[str, Any] | None = None,
) -> StackManager:
    """A stack of this run (labelled, so the sweep covers it), with an optional overlay.

    It goes where the session's stack goes: the same engine, the same publish address.
    """
    name = f"{state.identity.project_name(state.settings.project_prefix)}-t{uuid.uuid4().hex[:4]}"
    return labelled_stack(
        [str(path) for path in state.settings.compose_files],
        root,
        name,
        tmp_path,
        stack_variables(publish_address),
        state.identity.labels(state.keys),
        overlays=[broken] if broken is not None else (),
        host=publish_address,
    )
