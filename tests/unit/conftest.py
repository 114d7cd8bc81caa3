"""Unit-test plugins that E2E runs should not pay for.

Schemathesis' pytest plugin (with Hypothesis, which it imports) takes about a quarter of a
second to import, and pytest would load it for every run from its entry point: pyproject.toml
blocks that entry point (`-p no:schemathesis`), and this conftest registers the plugin when the
unit tests are collected, before `test_api_schemathesis.py` (which needs it) is.
"""

from __future__ import annotations

import importlib

import pytest

SCHEMATHESIS_PLUGIN = "schemathesis.pytest.plugin"


def pytest_configure(config: pytest.Config) -> None:
    """Register Schemathesis' plugin under its module's name (its entry point's is blocked)."""
    if not config.pluginmanager.has_plugin(SCHEMATHESIS_PLUGIN):
        config.pluginmanager.register(
            importlib.import_module(SCHEMATHESIS_PLUGIN), SCHEMATHESIS_PLUGIN
        )
