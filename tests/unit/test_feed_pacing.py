"""Pacer: message n goes out at start + n/rate on the injected clock: catch-up, no drift."""

from __future__ import annotations

import pytest

from k2.feed.pacing import Pacer
from tests.unit.clocks import ManualClock


def send_times(pacer: Pacer, clock: ManualClock, count: int) -> list[float]:
    times = []
    for _ in range(count):
        pacer.wait()
        times.append(round(clock.now - 1000.0, 9))
    return times


def test_messages_go_out_on_schedule() -> None:
    clock = ManualClock(1000.0)
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    assert send_times(pacer, clock, 5) == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_after_a_stall_it_catches_up_then_keeps_the_original_schedule() -> None:
    clock = ManualClock(1000.0)
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    assert send_times(pacer, clock, 2) == [0.0, 0.1]
    clock.now += 0.35  # a stall: messages 2, 3 and 4 (due .2, .3, .4) are late
    sleeps_before = len(clock.sleeps)
    assert send_times(pacer, clock, 3) == [0.45, 0.45, 0.45]
    assert len(clock.sleeps) == sleeps_before  # no sleeping while behind
    assert send_times(pacer, clock, 2) == [0.5, 0.6]  # back on the schedule, no drift


def test_slow_work_between_messages_does_not_accumulate_drift() -> None:
    clock = ManualClock(1000.0)
    pacer = Pacer(100, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(1000):
        pacer.wait()
        times.append(clock.now - 1000.0)
        clock.now += 0.003  # each send takes 3 ms of the 10 ms budget
    assert times[-1] == pytest.approx(9.99)


def test_a_sleep_that_returns_early_is_repeated_until_due() -> None:
    clock = ManualClock(1000.0)

    def half_sleep(seconds: float) -> None:  # like poll() returning after a delivery report
        clock.sleep(seconds / 2 if seconds > 1e-6 else seconds)

    pacer = Pacer(1, clock=clock, sleep=half_sleep)
    assert send_times(pacer, clock, 2) == [0.0, 1.0]
    assert len(clock.sleeps) > 2


@pytest.mark.parametrize("rate", [None, 0])
def test_unpaced_never_reads_the_clock_or_sleeps(rate: float | None) -> None:
    def no_clock() -> float:
        raise AssertionError("clock read")

    def no_sleep(seconds: float) -> None:
        raise AssertionError("slept")

    pacer = Pacer(rate, clock=no_clock, sleep=no_sleep)
    for _ in range(100):
        pacer.wait()


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Pacer(-1)


def test_with_slack_messages_due_soon_go_out_at_once_and_the_rate_holds() -> None:
    clock = ManualClock(1000.0)
    pacer = Pacer(1000, clock=clock, sleep=clock.sleep, slack_s=0.005)
    times = send_times(pacer, clock, 1000)
    assert times[:6] == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # due within 5 ms: no sleep
    assert all(
        due - 0.005 - 1e-9 <= at <= due
        for due, at in zip([n / 1000 for n in range(1000)], times, strict=True)
    )
    assert len(clock.sleeps) < 1000 / 5 + 1
