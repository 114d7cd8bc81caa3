"""E2EDockerManager: the step document's surface over the e2e_stack plugin's StackManager.

The fixtures (`docker_manager`, `minimal_stack`, `full_stack`, `api_client`) go through these
five methods; the plugin does the work. Outside pytest, `E2EDockerManager()` runs a stack of
its own from the repository's compose files, labelled as a run of this process, so a script
that dies is cleaned up by the next test run's sweep.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import anyio

from e2e_stack import ComposeProject, StackManager
from e2e_stack.engine import Engine
from e2e_stack.identity import LabelKeys, RunIdentity
from e2e_stack.manager import labelled_stack
from e2e_stack.preflight import publish_address
from e2e_stack.state import project_run_dir
from tests.e2e.k2_plugin import REPO_ROOT, plugin_ini, stack_variables

OVERRIDE_FILE = "docker-compose.e2e.override.yml"


class E2EDockerManager:
    """Manage the K2 compose stack: minimal (infrastructure) or full (plus the K2 services).

    Args:
        compose_file: the base compose file; the e2e override next to it adds the profiles.
        stack: the plugin's manager to act through (the fixtures pass the session's).
        cgroup_parent: outside pytest, the cgroup every container goes into (a CPU limit).
    """

    def __init__(
        self,
        compose_file: str = "docker-compose.v1.yml",
        *,
        stack: StackManager | None = None,
        cgroup_parent: str | None = None,
    ) -> None:
        self.compose_file = Path(compose_file)
        self._own_files: Path | None = None
        if stack is None:
            stack, self._own_files = _standalone(self.compose_file, cgroup_parent)
        self.stack = stack

    @property
    def running_services(self) -> dict[str, str]:
        """Service -> 'host:port' of the running profile (kept current after restarts)."""
        return self.stack.running_services

    @property
    def project(self) -> ComposeProject:
        """The running compose project (ports, credentials, the engine adapter)."""
        return self.stack.project

    async def start_minimal_stack(self) -> dict[str, str]:
        """Kafka, schema registry, MinIO, PostgreSQL, Iceberg REST: service -> host:port."""
        return await self.stack.start("minimal")

    async def start_full_stack(self) -> dict[str, str]:
        """The minimal stack plus consumer-crypto and k2-query-api, grown in place."""
        return await self.stack.start("full")

    async def stop_stack(self) -> None:
        """Stop and remove every profile's services, networks and volumes."""
        await anyio.to_thread.run_sync(self.stop_now)

    def stop_now(self) -> None:
        """Blocking `stop_stack` (for scripts)."""
        self.stack.stop_now()
        if self._own_files is not None:  # a standalone stack's variables file and overlay
            shutil.rmtree(self._own_files, ignore_errors=True)

    async def wait_for_health(self, service_name: str, timeout: int = 60) -> bool:
        """Wait until a service is ready again; raise StackUnhealthy with its logs if not.

        Returns True for the step document's `assert await ...wait_for_health(...)`; a
        service that does not become ready raises instead, so nobody can ignore it.
        """
        await self.stack.wait_for_health(service_name, timeout)
        return True

    async def get_service_logs(self, service_name: str, lines: int = 50) -> str:
        """The last `lines` log lines of a service, for debugging a failed test."""
        return await self.stack.service_logs(service_name, lines)

    def raise_if_broken(self, recovering_since: float | None = None) -> None:
        """Raise StackUnhealthy if a service of the running profile is down now.

        `recovering_since`: see StackManager.raise_if_broken.
        """
        self.stack.raise_if_broken(recovering_since)


def _standalone(compose_file: Path, cgroup_parent: str | None) -> tuple[StackManager, Path]:
    """A stack of this process's own, outside pytest, over the base file and the override.

    Returns the manager and the directory of the files generated for it.
    """
    base = compose_file if compose_file.is_absolute() else REPO_ROOT / compose_file
    identity = RunIdentity.current()
    # The prefix and labels pyproject.toml gives the plugin: the sweep covers this stack too.
    name = identity.project_name(plugin_ini()["e2e_project_prefix"])
    run_dir = project_run_dir(REPO_ROOT, name)
    # The plugin's setting, read as pytest would read its variable (PreflightError if unset
    # for a remote engine).
    variable = f"{plugin_ini()['e2e_env_prefix']}_PUBLISH_ADDRESS"
    address = publish_address(Engine().endpoint(), os.environ.get(variable), variable)
    manager = labelled_stack(
        [str(base), str(base.parent / OVERRIDE_FILE)],
        REPO_ROOT,
        name,
        run_dir,
        stack_variables(address),
        identity.labels(LabelKeys(plugin_ini()["e2e_label_namespace"])),
        cgroup_parent,
        host=address,
    )
    return manager, run_dir
