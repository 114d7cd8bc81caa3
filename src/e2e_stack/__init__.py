"""e2e_stack: a pytest plugin that runs a docker compose stack for end-to-end tests.

pytest-docker's fixtures describe the project (command, files, name, setup, cleanup); this
plugin starts it per run and per xdist worker, waits for every service at once and fails fast
with the failing service's logs, attaches a bundle of logs to every failed test, removes the
stacks of runs that died, and can reuse a running stack or run it under a CPU limit.

The public surface is this module; the modules behind it each own one concern:

| module      | owns                                                              |
|-------------|-------------------------------------------------------------------|
| settings    | the --e2e-* options, ini keys and environment variables           |
| project     | the carrier: command, files, name, profiles, generated overlays   |
| engine      | every call to Docker (python-on-whales and the compose CLI)       |
| preflight   | checks before `up`, each failure one line                         |
| readiness   | wait strategies, derived from the compose model                   |
| waiting     | the parallel wait that fails fast with logs                       |
| manager     | start, grow, still-ready checks and teardown of one stack         |
| faults      | kill, stop, pause, network cut, restart: restored, waited, timed  |
| identity    | run labels, and whose a stack is                                  |
| sweep       | removal of dead runs' stacks                                      |
| reuse       | the config hash that lets a run reuse a kept stack                |
| bundles     | failure bundles; `redact` keeps secrets out of them               |
| stats       | peak CPU/memory; `summary` the end-of-run table                   |
| cpu_limit   | the slow-machine mode; `cpu_meter` and `calibration` measure CPU   |
| target      | an external deployment (--e2e-target): addresses, no control      |
| fixtures    | the fixtures; `plugin` the pytest hooks; `hookspecs` the hooks     |
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e2e_stack.engine import Engine, EngineError
    from e2e_stack.faults import FaultRecord, Faults
    from e2e_stack.manager import StackManager
    from e2e_stack.preflight import PreflightError
    from e2e_stack.project import ComposeProject, free_port
    from e2e_stack.readiness import (
        CompletesSuccessfully,
        ContainerState,
        HealthcheckPasses,
        KeepsRunning,
        Readiness,
        Verdict,
    )
    from e2e_stack.settings import Settings
    from e2e_stack.target import Deployment, Target
    from e2e_stack.waiting import StackUnhealthy

# Loaded on first use: pytest imports this package with every run (the entry point), and a
# unit run must not pay for the Docker libraries.
_HOME = {
    "Engine": "engine",
    "EngineError": "engine",
    "FaultRecord": "faults",
    "Faults": "faults",
    "StackManager": "manager",
    "PreflightError": "preflight",
    "ComposeProject": "project",
    "free_port": "project",
    "CompletesSuccessfully": "readiness",
    "ContainerState": "readiness",
    "HealthcheckPasses": "readiness",
    "KeepsRunning": "readiness",
    "Readiness": "readiness",
    "Verdict": "readiness",
    "Settings": "settings",
    "Deployment": "target",
    "Target": "target",
    "StackUnhealthy": "waiting",
}
__all__ = [
    "CompletesSuccessfully",
    "ComposeProject",
    "ContainerState",
    "Deployment",
    "Engine",
    "EngineError",
    "FaultRecord",
    "Faults",
    "HealthcheckPasses",
    "KeepsRunning",
    "PreflightError",
    "Readiness",
    "Settings",
    "StackManager",
    "StackUnhealthy",
    "Target",
    "Verdict",
    "free_port",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'e2e_stack' has no attribute {name!r}")
    return getattr(importlib.import_module(f"e2e_stack.{_HOME[name]}"), name)
