"""The example project's own tests: the e2e_stack plugin alone, with pytest-docker's fixtures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from e2e_stack import StackManager

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """Async tests on asyncio."""
    return "asyncio"


def test_store_answers_on_the_port_pytest_docker_reports(docker_services: Any) -> None:
    """pytest-docker's own Services work on the plugin's stack."""
    port = docker_services.port_for("store", 9000)
    url = f"http://127.0.0.1:{port}/minio/health/ready"
    docker_services.wait_until_responsive(
        check=lambda: httpx.get(url, timeout=2).status_code == 200, timeout=30, pause=0.2
    )
    assert httpx.get(url, timeout=5).status_code == 200


def test_smallest_profile_runs_only_the_store(
    running_stack: dict[str, str], stack_manager: StackManager
) -> None:
    """The session starts in the smallest profile the compose file defines."""
    assert stack_manager.active_profile == "store"
    assert set(running_stack) == {"store"}
    assert stack_manager.project.engine.services_present() == {"store"}


@pytest.mark.grows
async def test_growing_to_all_seeds_the_database(stack_manager: StackManager) -> None:
    """Growing runs the larger profile's services, one-shot seed included, in place."""
    services = await stack_manager.start("all")
    assert set(services) == {"store", "db"}
    rows = stack_manager.project.engine.execute(
        "db", ["psql", "-U", "demo", "-d", "demo", "-Atc", "SELECT key FROM objects"]
    )
    assert rows.split() == ["hello"]
