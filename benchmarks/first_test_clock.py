"""pytest plugin for benchmarks: write the wall-clock time at which the first test body starts.

Loaded with `-p benchmarks.first_test_clock`; the file named by K2_BENCH_FIRST_TEST_FILE gets
one float, so a benchmark can subtract the time it launched pytest.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

_written = False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Record the first test body's start; later tests change nothing."""
    global _written
    target = os.environ.get("K2_BENCH_FIRST_TEST_FILE")
    if target and not _written:
        Path(target).write_text(f"{time.time():.3f}\n")
        _written = True
