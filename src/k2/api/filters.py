"""TradeFilter as a pyiceberg row filter, so pyiceberg prunes before reading any data file.

The time bounds project onto the table's day(timestamp) partition: manifests and files of
other days are skipped on their partition summaries, and files whose `symbol` or `timestamp`
bounds exclude the filter on their column metrics. pyiceberg applies
the same expression to the rows it reads, so what a scan returns matches exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    LessThanOrEqual,
)

from k2.api.query import TradeFilter
from k2.model.timestamps import to_micros


def _predicate(
    kind: Callable[..., BooleanExpression], column: str, value: str | int
) -> BooleanExpression:
    # pyiceberg's predicates are pydantic models whose own __init__ takes (term, literal);
    # mypy sees only the generated keyword signature, so they are called through here.
    return kind(column, value)


def iceberg_row_filter(where: TradeFilter) -> BooleanExpression:
    """The pyiceberg expression of `where`; AlwaysTrue when it selects everything.

    Timestamps are given as int microseconds, the unit of the timestamptz column, so the
    literal binds without any string parsing or zone guessing.
    """
    terms: list[BooleanExpression] = []
    if where.symbol is not None:
        terms.append(_predicate(EqualTo, "symbol", where.symbol))
    if where.exchange is not None:
        terms.append(_predicate(EqualTo, "exchange", where.exchange))
    if where.start is not None:
        terms.append(_predicate(GreaterThanOrEqual, "timestamp", to_micros(where.start)))
    if where.end is not None:
        terms.append(_predicate(LessThanOrEqual, "timestamp", to_micros(where.end)))
    if not terms:
        return AlwaysTrue()
    if len(terms) == 1:
        return terms[0]
    return And(*terms)
