"""EngineEvents: a wait wakes at an event or a poke, falls back to polling without a stream."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence

from e2e_stack.engine import EngineError
from e2e_stack.wakeup import FALLBACK_S, WITHOUT_EVENTS_S, EngineEvents


class _ScriptedEngine:
    """Stands in for `docker events`: a child that prints one action per line, as told."""

    def __init__(self, script: str | None) -> None:
        self.script = script
        self.asked: list[Sequence[str]] = []
        self.started: list[subprocess.Popen[str]] = []

    def container_events(self, actions: Sequence[str]) -> subprocess.Popen[str]:
        self.asked.append(actions)
        if self.script is None:
            raise EngineError("'docker' is not installed or not on PATH")
        proc = subprocess.Popen(
            [sys.executable, "-u", "-c", self.script], stdout=subprocess.PIPE, text=True
        )
        self.started.append(proc)
        return proc


def test_an_event_wakes_the_wait_long_before_its_timeout() -> None:
    engine = _ScriptedEngine("import time; time.sleep(0.3); print('start'); time.sleep(60)")
    with EngineEvents(engine) as events:  # type: ignore[arg-type]
        started = time.monotonic()
        assert events.wait(timeout=30)
        assert time.monotonic() - started < 10
        assert events.seen == 1
        assert "health_status" in engine.asked[0]


def test_without_an_event_the_wait_ends_at_its_timeout_unwoken() -> None:
    engine = _ScriptedEngine("import time; time.sleep(60)")
    with EngineEvents(engine) as events:  # type: ignore[arg-type]
        started = time.monotonic()
        assert not events.wait(timeout=0.2)
        assert time.monotonic() - started >= 0.2


def test_an_event_between_two_waits_is_not_lost() -> None:
    engine = _ScriptedEngine("print('die'); import time; time.sleep(60)")
    with EngineEvents(engine) as events:  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while events.seen == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert events.wait(timeout=0)  # it arrived before anyone waited


def test_a_poke_wakes_the_wait() -> None:
    with EngineEvents(_ScriptedEngine("import time; time.sleep(60)")) as events:  # type: ignore[arg-type]
        events.poke()
        assert events.wait(timeout=30)


def test_no_stream_means_polling_at_the_short_interval() -> None:
    with EngineEvents(_ScriptedEngine(None)) as events:  # type: ignore[arg-type]
        assert not events.streaming
        started = time.monotonic()
        events.sleep(FALLBACK_S)
        assert time.monotonic() - started < FALLBACK_S
        assert time.monotonic() - started >= WITHOUT_EVENTS_S


def test_a_stream_that_ended_falls_back_to_polling() -> None:
    with EngineEvents(_ScriptedEngine("print('start')")) as events:  # type: ignore[arg-type]
        deadline = time.monotonic() + 10
        while events.streaming and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not events.streaming
        events.wait(timeout=0)  # the one event
        started = time.monotonic()
        assert not events.wait(timeout=30)
        assert time.monotonic() - started < 5


def test_leaving_stops_the_stream() -> None:
    engine = _ScriptedEngine("import time; time.sleep(60)")
    with EngineEvents(engine):  # type: ignore[arg-type]
        [proc] = engine.started
        assert proc.poll() is None
    assert proc.poll() is not None
