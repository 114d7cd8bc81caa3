"""Long build steps say what they are doing at least every 15 s (issue 13)."""

from __future__ import annotations

import sys

from k2.stack import fetch
from k2.stack._proc import Ticker, run_reporting


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_ticker_speaks_only_after_a_silence_and_says_counts_and_the_current_item() -> None:
    clock, said = Clock(), list[str]()
    ticker = Ticker(said.append, every_s=15, measure=lambda: "3.0 MB in libs/", clock=clock)
    ticker.note("downloaded", "a.jar")
    ticker.note("downloaded", "b.jar")
    clock.now += 14
    assert not ticker.tick()
    clock.now += 1
    assert ticker.tick()
    assert said == ["still working: 15s, 2 downloaded, 3.0 MB in libs/; last: downloaded b.jar"]
    clock.now += 10
    ticker.said()  # the caller printed a line of its own
    clock.now += 14
    assert not ticker.tick()


def test_each_tool_line_is_read_as_what_it_did_never_naming_a_repository() -> None:
    assert fetch._maven_line(
        "Downloaded from central: https://repo.example.invalid/m2/org/x/x-1.0.jar (12 kB at 1 MB/s)"
    ) == ("downloaded", "x-1.0.jar")
    assert fetch._maven_line("[INFO] Copying x-1.0.jar to /ctx/libs/x-1.0.jar") == (
        "copied",
        "x-1.0.jar",
    )
    assert fetch._go_line("go: downloading github.com/x/y v1.2.3") == (
        "modules downloaded",
        "github.com/x/y@v1.2.3",
    )
    assert fetch._go_line("github.com/minio/minio/cmd") == (
        "packages compiled",
        "github.com/minio/minio/cmd",
    )
    assert fetch._go_line("go: finding module for package x") is None
    assert fetch._pip_line("Collecting pyarrow==18.0.0") == ("resolved", "pyarrow==18.0.0")
    assert fetch._pip_line("  Downloading https://h.invalid/p/pyarrow-18.whl (40 MB)") == (
        "downloaded",
        "pyarrow-18.whl",
    )
    assert fetch._pip_line("[INFO] nothing") is None


def test_run_reporting_feeds_the_ticker_and_keeps_all_output() -> None:
    said: list[str] = []
    script = "import sys; print('go: downloading a/b v1'); print('a/b', file=sys.stderr)"
    with Ticker(said.append) as ticker:
        proc = run_reporting([sys.executable, "-c", script], ticker, fetch._go_line, timeout=30)
    assert proc.returncode == 0
    # Both streams, in whatever order the child flushed them (stdout is buffered in a pipe).
    assert sorted(proc.stdout.splitlines()) == ["a/b", "go: downloading a/b v1"]
    assert ticker.counts == {"modules downloaded": 1, "packages compiled": 1}


def test_run_reporting_stops_a_command_at_its_timeout() -> None:
    with Ticker(lambda _: None) as ticker:
        proc = run_reporting(
            [sys.executable, "-c", "import time; time.sleep(30)"],
            ticker,
            fetch._go_line,
            timeout=0.5,
        )
    assert proc.returncode == 124
    assert "timed out" in proc.stderr


def test_debootstrap_lines_are_read_as_steps_per_package() -> None:
    from k2.stack.baseimage import _debootstrap_line

    assert _debootstrap_line("I: Retrieving libc6 2.36-9+deb12u10") == ("retrieving", "libc6")
    assert _debootstrap_line("I: Configuring apt...") == ("configuring", "apt...")
    assert _debootstrap_line("I: Base system installed successfully.") is None
