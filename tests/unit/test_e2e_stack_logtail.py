"""A failure's log tail keeps its cause when one line floods the log."""

from __future__ import annotations

from e2e_stack.logtail import fold

REFUSED = "%3|{n}|FAIL|rdkafka#consumer-1| kafka:9092: Connect to 172.18.0.{n}:9092 failed"


def test_a_flood_of_one_line_is_folded_and_the_cause_before_it_stays() -> None:
    lines = [
        "starting",
        "Iceberg commit made no progress for 30 s: giving up",
        *(REFUSED.format(n=n) for n in range(500)),
        "stopped",
    ]

    tail = fold(lines, keep=3)

    assert tail == [
        "Iceberg commit made no progress for 30 s: giving up",
        REFUSED.format(n=499) + "  [and 499 more like it before]",
        "stopped",
    ]


def test_distinct_lines_are_the_plain_tail() -> None:
    lines = [f"step {chr(97 + n)}" for n in range(10)]

    assert fold(lines, keep=4) == lines[-4:]
    assert fold(lines, keep=40) == lines
    assert fold([], keep=4) == []
