"""Hooks a project implements (in its conftest.py or a plugin) to adapt the stack to itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from e2e_stack.settings import Settings


@pytest.hookspec
def pytest_e2e_stack_environment(
    settings: Settings, project_name: str, publish_address: str
) -> dict[str, str] | None:
    """Compose variables for one run's stack, written to its variables file before `up`.

    For values a service must know before it starts and that differ per run: a host port a
    broker advertises to its clients, say, and the address (`publish_address`) its ports are
    published on and clients reach it at. Every implementation's variables are merged; a
    reused stack keeps the values its first run wrote.
    """
