"""E2E fixtures: one minimal-profile stack per session, through pytest-docker.

pytest-docker runs `up --wait`; its fixtures are overridden here to point at both compose
files, a project name unique to this run, and the run's variables file (Kafka's host port).
Teardown is registered before `up` starts, so a failed `up` is torn down as well.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.e2e.utils.compose_project import ComposeProject

PROFILE = "minimal"


@pytest.fixture(scope="session")
def stack_env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each project's variables file lives."""
    return tmp_path_factory.mktemp("compose-env")


@pytest.fixture(scope="session")
def compose_project(pytestconfig: pytest.Config, stack_env_dir: Path) -> ComposeProject:
    """The session's project: unique name, so it never touches another run's stack."""
    name = f"k2e2e-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return ComposeProject.create(pytestconfig.rootpath, name, (PROFILE,), stack_env_dir)


@pytest.fixture(scope="session")
def docker_compose_file(compose_project: ComposeProject) -> list[str]:
    """Both compose files, base first."""
    return [str(path) for path in compose_project.compose_files]


@pytest.fixture(scope="session")
def docker_compose_project_name(compose_project: ComposeProject) -> str:
    """The unique project name."""
    return compose_project.name


@pytest.fixture(scope="session")
def docker_compose_command(compose_project: ComposeProject) -> str:
    """Compose v2 with this project's variables file and profile on every call."""
    return (
        f'docker compose --env-file "{compose_project.env_file}" '
        f"--profile {' --profile '.join(compose_project.profiles)}"
    )


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    """Start and wait for every service's healthcheck."""
    return ["up --wait"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    """Nothing here: `minimal_stack` tears down, also after a failed `up`."""
    return []


@pytest.fixture(scope="session")
def minimal_stack(
    request: pytest.FixtureRequest, compose_project: ComposeProject
) -> ComposeProject:
    """The running, healthy minimal-profile stack of this session."""
    # A finalizer, not code after `yield`: it must also run when `up` itself fails.
    request.addfinalizer(compose_project.down)  # noqa: PT021
    request.getfixturevalue("docker_services")
    return compose_project
