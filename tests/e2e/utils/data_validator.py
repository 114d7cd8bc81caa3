"""Compare what the feed produced with what each hop holds: Kafka, Iceberg, the API.

Every hop's records are brought to one canonical form (Decimal, aware UTC datetime, plain
str/tuple/dict) so that equality means the same value, not the same spelling. A mismatch is
reported as missing, duplicated and differing trades with a few examples each, so a red test
says which hop lost what.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from k2.model import Trade
from k2.model.schema import trade_v2_field_names

# Every TradeV2 field, from the schema itself; the table's lineage columns (kafka_partition,
# kafka_offset) are not part of a trade.
TRADE_FIELDS = trade_v2_field_names()
_TIMESTAMPS = {"timestamp", "ingestion_timestamp"}
_DECIMALS = {"price", "quantity"}
EXAMPLES = 3

Canonical = dict[str, Any]


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int):  # Avro timestamp-micros
        return datetime.fromtimestamp(value // 1_000_000, UTC).replace(
            microsecond=value % 1_000_000
        )
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def canonical(record: Mapping[str, Any]) -> Canonical:
    """One trade from any hop (Trade, Avro dict, Arrow row, API JSON) in comparable form."""
    out: Canonical = {}
    for name in TRADE_FIELDS:
        value = record.get(name)
        if name in _TIMESTAMPS:
            value = _instant(value)
        elif name in _DECIMALS:
            value = None if value is None else Decimal(str(value))
        elif name == "trade_conditions":
            value = tuple(value or ())
        elif name == "vendor_data":
            # Arrow maps come back as lists of (key, value) pairs; an empty map equals none.
            pairs = value.items() if isinstance(value, Mapping) else (value or [])
            value = dict(pairs) or None
        elif isinstance(value, Enum):
            value = value.value
        out[name] = value
    return out


def from_trade(trade: Trade) -> Canonical:
    """The canonical form of a trade the feed produced."""
    return canonical(trade.to_avro_dict())


@dataclass
class HopReport:
    """How one hop's records differ from what was produced."""

    hop: str
    expected: int
    actual: int
    missing: list[str] = field(default_factory=list)
    duplicated: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    differing: list[tuple[str, dict[str, tuple[Any, Any]]]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict, repr=False)
    """message_id -> 'SYMBOL trade_id' of the produced trades, for readable examples."""
    error: str | None = None
    """Why the hop could not be read at all."""

    @property
    def ok(self) -> bool:
        """Exactly the produced trades, each once, field for field."""
        return not (
            self.error or self.missing or self.duplicated or self.unexpected or self.differing
        )

    def describe(self) -> str:
        """A multi-line account with a few examples of each kind of mismatch."""
        if self.error is not None:
            return f"{self.hop}: expected {self.expected} trades, could not read: {self.error}"
        lines = [f"{self.hop}: expected {self.expected} trades, found {self.actual}"]
        if self.missing:
            examples = [f"{m} ({self.labels.get(m, '?')})" for m in self.missing[:EXAMPLES]]
            lines.append(f"  missing {len(self.missing)}, e.g. {examples}")
        if self.duplicated:
            copies = list(self.duplicated.items())[:EXAMPLES]
            lines.append(f"  duplicated {len(self.duplicated)}, e.g. (id, copies) {copies}")
        if self.unexpected:
            lines.append(
                f"  not produced by this test {len(self.unexpected)}, "
                f"e.g. {self.unexpected[:EXAMPLES]}"
            )
        for message_id, diffs in self.differing[:EXAMPLES]:
            shown = ", ".join(f"{k}: produced {a!r} != found {b!r}" for k, (a, b) in diffs.items())
            lines.append(f"  differs {message_id}: {shown}")
        if len(self.differing) > EXAMPLES:
            lines.append(f"  ... {len(self.differing)} trades differ in all")
        return "\n".join(lines)


def compare(hop: str, expected: Iterable[Canonical], found: Iterable[Canonical]) -> HopReport:
    """Match by message_id; report what is missing, duplicated, unexpected or different."""
    produced = {record["message_id"]: record for record in expected}
    seen = list(found)
    counts = Counter(record["message_id"] for record in seen)
    report = HopReport(hop, expected=len(produced), actual=len(seen))
    report.labels = {m: f"{r['symbol']} {r['trade_id']}" for m, r in produced.items()}
    report.missing = sorted(set(produced) - set(counts))
    report.duplicated = {mid: n for mid, n in sorted(counts.items()) if n > 1}
    report.unexpected = sorted(set(counts) - set(produced))
    first: dict[str, Canonical] = {}
    for record in seen:
        first.setdefault(record["message_id"], record)
    for message_id, want in produced.items():
        got = first.get(message_id)
        if got is None:
            continue
        diffs = {k: (want[k], got[k]) for k in TRADE_FIELDS if want[k] != got[k]}
        if diffs:
            report.differing.append((message_id, diffs))
    return report


class PipelineMismatch(AssertionError):
    """Raised with every failing hop's account, first hop first."""


def unreadable(hop: str, expected: int, error: BaseException) -> HopReport:
    """The report of a hop whose reader failed (service down, timeout)."""
    return HopReport(hop, expected=expected, actual=0, error=f"{type(error).__name__}: {error}")


def mismatch_text(reports: Iterable[HopReport]) -> str | None:
    """'first broken hop: X' and every failing hop's account; None when every hop is exact."""
    bad = [report for report in reports if not report.ok]
    if not bad:
        return None
    return f"first broken hop: {bad[0].hop}\n" + "\n".join(r.describe() for r in bad)


def assert_hops(*reports: HopReport) -> None:
    """Fail naming the first hop that lost, duplicated or changed a trade (and the rest)."""
    text = mismatch_text(reports)
    if text is not None:
        raise PipelineMismatch(text)
