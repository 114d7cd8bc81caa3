"""pytest plugin for benchmarks: when the first test body starts, and where the time went.

Loaded with `-p benchmarks.first_test_clock`; the file named by K2_BENCH_FIRST_TEST_FILE gets
a JSON object of wall-clock instants (epoch seconds): `configured` (pytest and every plugin and
initial conftest loaded), `collected` (collection and selection done), `first_test` (the first
test body starts), and `fixtures`: each fixture set up before that body, with the seconds its
own setup took (its dependencies are set up before it, so the times do not overlap). A
benchmark subtracts the instant it launched pytest.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

_clock: dict[str, Any] = {"fixtures": {}}
_written = False


def pytest_configure(config: pytest.Config) -> None:
    """Everything pytest loads before it starts collecting has been loaded."""
    _clock["configured"] = time.time()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection and selection are done."""
    _clock["collected"] = time.time()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Time each fixture's own setup until the first test body starts."""
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        if not _written:
            name = fixturedef.argname
            _clock["fixtures"][name] = round(
                _clock["fixtures"].get(name, 0.0) + time.perf_counter() - started, 3
            )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Record the first test body's start; later tests change nothing."""
    global _written
    target = os.environ.get("K2_BENCH_FIRST_TEST_FILE")
    if target and not _written:
        _clock["first_test"] = time.time()
        Path(target).write_text(json.dumps(_clock))
        _written = True
