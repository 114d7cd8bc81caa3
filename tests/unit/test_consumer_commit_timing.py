"""Commit timing: phases as wall time, and an observer that stays out of pyarrow's write path."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from k2.consumer.commit_timing import CLOCK, CommitClock, TimedFileIO
from tests.unit.clocks import ManualClock


def test_overlapping_spans_of_a_kind_count_once_and_the_rest_is_other() -> None:
    clock = ManualClock(0.0)
    timing = CommitClock(clock)
    with timing.measure() as breakdown:
        timing.span("data_files", 0.0, 0.3)  # two files written in parallel
        timing.span("data_files", 0.1, 0.4)
        timing.span("catalog", 0.5, 0.6)
        clock.now = 1.0
    result = breakdown()
    assert result.total_ms == 1000.0
    assert result.phases_ms["data_files"] == 400.0
    assert result.phases_ms["catalog"] == 100.0
    assert result.phases_ms["other"] == 500.0


def test_spans_outside_a_measured_commit_are_dropped() -> None:
    timing = CommitClock(ManualClock(0.0))
    timing.span("catalog", 0.0, 1.0)
    with timing.measure() as breakdown:
        pass
    assert "catalog" not in breakdown().phases_ms


def test_idle_time_counts_from_the_last_sign_of_life_of_the_measured_commit() -> None:
    clock = ManualClock(10.0)
    timing = CommitClock(clock)
    assert timing.idle_s() is None  # nothing measured: the writer falls back to its own clock
    with timing.measure():
        clock.now = 13.0
        assert timing.idle_s() == 3.0
        timing.span("data_files", 10.0, 13.0)
        clock.now = 14.5
        assert timing.idle_s() == 1.5
        timing.progressed()
        assert timing.idle_s() == 0.0
    assert timing.idle_s() is None
    timing.progressed()  # outside a measured commit: not a sign of anything
    assert timing.idle_s() is None


def test_a_data_file_keeps_pyarrows_native_stream_and_is_timed_to_its_size_check(
    tmp_path: Path,
) -> None:
    io = TimedFileIO({})
    location = f"file://{tmp_path}/part-0.parquet"
    with CLOCK.measure() as breakdown:
        output = io.new_output(location)
        stream = output.create(overwrite=True)
        # A Python object here would make pyarrow call back into Python for every page.
        assert isinstance(stream, pa.NativeFile)
        stream.write(b"PAR1")
        time.sleep(0.01)
        stream.close()
        assert len(output) == 4  # pyiceberg asks the size of the file it has just written
    assert breakdown().phases_ms["data_files"] >= 10
