"""What the plugin knows about the current pytest process, kept in the config's stash."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from e2e_stack.faults import Faults
from e2e_stack.identity import LabelKeys, RunIdentity
from e2e_stack.redact import Redactor
from e2e_stack.settings import Settings
from e2e_stack.summary import ServiceRow

if TYPE_CHECKING:  # the Docker libraries load only when a stack is used
    from e2e_stack.manager import StackManager
    from e2e_stack.stats import StatsSampler
    from e2e_stack.target import Target

CONTROL_FIXTURE: Final = "stack_manager"
"""A test controls the stack's containers when this fixture is in its closure."""
TARGET_FIXTURE: Final = "stack_target"
"""A test reads a running deployment (ours or an external one) through this fixture."""
RUNS_DIR: Final = Path(".e2e-stack")
"""Under the rootdir: each run's generated files (variables file, labels overlay)."""


def project_run_dir(root: Path, project_name: str) -> Path:
    """Where a project's generated files go, under the rootdir `root`."""
    return root / RUNS_DIR / project_name


@dataclass
class Findings:
    """What the end-of-run summary reports besides the stack table."""

    notes: list[str] = field(default_factory=list)
    bundles: list[Path] = field(default_factory=list)
    setup_bundle: Path | None = None
    worker_rows: list[ServiceRow] = field(default_factory=list)
    faults: list[dict[str, object]] = field(default_factory=list)
    """One row per fault a test caused (see e2e_stack.faults.Faults.rows)."""
    deselected: dict[str, list[str]] = field(default_factory=dict)
    """Why tests were left out of a run against an external target -> their node ids."""


@dataclass
class RunState:
    """The settings and identity of this process's run, and the stack once one is used."""

    settings: Settings
    identity: RunIdentity
    worker: str | None
    manager: StackManager | None = None
    target: Target | None = None
    """The external deployment of --e2e-target; then `manager` stays None."""
    sampler: StatsSampler | None = None
    redactor: Redactor = field(default_factory=Redactor)
    findings: Findings = field(default_factory=Findings)

    @property
    def keys(self) -> LabelKeys:
        """The label names of this run's namespace."""
        return LabelKeys(self.settings.label_namespace)

    def run_dir(self, root: Path, project_name: str) -> Path:
        """Where a project's generated files go."""
        return project_run_dir(root, project_name)


STATE: Final = pytest.StashKey[RunState]()
FAULTS: Final = pytest.StashKey[Faults]()
"""The faults a test caused (on its item), for its failure bundle."""


def run_state(config: pytest.Config) -> RunState:
    """This process's run state (set in pytest_configure)."""
    return config.stash[STATE]


def uses_stack(fixturenames: Iterable[str]) -> bool:
    """Whether a test with this fixture closure uses a stack (to control it, or to read it)."""
    names = set(fixturenames)
    return CONTROL_FIXTURE in names or TARGET_FIXTURE in names
