"""Per-trade hop times, freshness percentiles and throughput, from what was really observed.

For every trade the feed's ledger says when it was sent and when Kafka acknowledged it; the
pipeline watch says which consumer commit first held its offset (the snapshot's timestamp)
and when the API first served it. Visibility is read per symbol: a symbol is one Kafka key,
so one partition, and the consumer commits a partition in offset order; the k-th trade of a
symbol (by offset) is visible once the API's total for that symbol exceeds k.

Clocks: the ledger's monotonic durations are anchored on its wall-clock acknowledgement
time; snapshots carry the consumer's wall clock. The containers share the host's kernel
clock, so the hops compare directly (a remote engine would add its clock offset).
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the pytest plugin imports this module at start-up: keep it stdlib-only
    from k2.feed.ledger import LedgerEntry
    from tests.e2e.utils.pipeline_watch import CommitSeen, PipelineWatch, Visibility

PLOT_SAMPLES: Final = 5_000
JSON_NAME: Final = "performance.json"
PLOT_NAME: Final = "freshness.png"


class MeasurementError(AssertionError):
    """The observations cannot account for every trade: a number would be made up."""


@dataclass(frozen=True, slots=True)
class HopTimes:
    """One trade's journey, in seconds since it was sent."""

    message_id: str
    sent_at: float
    """Wall clock (epoch seconds) when produce() was called."""
    acked_s: float
    committed_s: float
    visible_s: float

    @property
    def freshness_s(self) -> float:
        """Sent to first served by the API: what a user of the API waits for."""
        return self.visible_s


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Order statistics of one quantity (seconds unless the name says otherwise)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        """Inclusive percentiles; a single value is its own percentiles."""
        if not values:
            raise MeasurementError("no values to take percentiles of")
        if len(values) == 1:
            return cls(1, values[0], values[0], values[0], values[0])
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cls(len(values), cuts[49], cuts[94], cuts[98], max(values))


def _sent_at(entry: LedgerEntry) -> float:
    return entry.ack_wall.timestamp() - (entry.ack_monotonic - entry.sent_monotonic)


def _visible_at(entries: Sequence[LedgerEntry], seen: Sequence[Visibility]) -> dict[str, float]:
    """message_id -> first time the API served it, per symbol in offset order."""
    by_symbol: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in entries:
        by_symbol[entry.symbol].append(entry)
    answers: dict[str, list[Visibility]] = defaultdict(list)
    for answer in seen:
        answers[answer.symbol].append(answer)
    visible: dict[str, float] = {}
    for symbol, ours in by_symbol.items():
        ours.sort(key=lambda e: (e.partition, e.offset))
        if len({e.partition for e in ours}) > 1:
            raise MeasurementError(f"{symbol} was spread over several partitions")
        shown = 0
        for answer in sorted(answers[symbol], key=lambda a: a.seen_at):
            for entry in ours[shown : answer.total]:
                visible[entry.message_id] = answer.seen_at
            shown = max(shown, min(answer.total, len(ours)))
    return visible


def _committed_at(
    entries: Sequence[LedgerEntry], commits: Sequence[CommitSeen]
) -> dict[str, float]:
    """message_id -> time of the first observed commit whose offsets cover the trade."""
    ordered = sorted(commits, key=lambda c: c.sequence_number)
    per_partition: dict[int, tuple[list[int], list[float]]] = {}
    for partition in {e.partition for e in entries}:
        # Offsets only move forward, so each partition's list is sorted for bisect.
        nexts, times = [], []
        for commit in ordered:
            if partition in commit.next_offsets:
                nexts.append(commit.next_offsets[partition])
                times.append(commit.committed_at)
        per_partition[partition] = (nexts, times)
    committed: dict[str, float] = {}
    for entry in entries:
        nexts, times = per_partition[entry.partition]
        index = bisect.bisect_right(nexts, entry.offset)
        if index < len(nexts):
            committed[entry.message_id] = times[index]
    return committed


def hop_times(
    entries: Sequence[LedgerEntry], commits: Sequence[CommitSeen], seen: Sequence[Visibility]
) -> list[HopTimes]:
    """Every trade's hop times; MeasurementError if any trade was not observed at some hop."""
    visible = _visible_at(entries, seen)
    committed = _committed_at(entries, commits)
    unseen = [e.message_id for e in entries if e.message_id not in visible]
    uncommitted = [e.message_id for e in entries if e.message_id not in committed]
    if unseen or uncommitted:
        raise MeasurementError(
            f"of {len(entries)} trades, {len(unseen)} were never seen served by the API "
            f"(e.g. {unseen[:3]}) and {len(uncommitted)} are in no observed commit "
            f"(e.g. {uncommitted[:3]}); {len(commits)} commits observed"
        )
    times = []
    for entry in entries:
        sent = _sent_at(entry)
        times.append(
            HopTimes(
                entry.message_id,
                sent,
                entry.ack_monotonic - entry.sent_monotonic,
                committed[entry.message_id] - sent,
                visible[entry.message_id] - sent,
            )
        )
    return times


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def _poll_gap(seen: Sequence[Visibility]) -> float:
    """How finely visibility is timed (median seconds).

    For each snapshot, the time from the answer before the one that first showed it. Every
    answer names the snapshot it was read from and the first one showing it dates all totals
    there, so the uncertainty is the gap between two answers of any symbol.
    """
    ordered = sorted(seen, key=lambda answer: answer.arrived)
    gaps = [
        answer.arrived - previous.arrived
        for previous, answer in itertools.pairwise(ordered)
        if answer.seen_at == answer.arrived
    ]
    return statistics.median(gaps) if gaps else 0.0


@dataclass
class RunResult:
    """What one measured run of the feed through the pipeline showed."""

    name: str
    target_rate: float | None
    """msg/s the feed was paced at; None for flat out."""
    trades: int
    symbols: int
    produced_rate: float | None
    """Trades per second the feed achieved (first to last send)."""
    delivered_rate: float | None
    """Trades per second through to the API (first send to last first-served)."""
    freshness: Percentiles
    hops: dict[str, Percentiles]
    """ack: sent to Kafka's ack; commit: ack to the Iceberg commit holding the trade;
    visible: that commit to the first API answer serving it."""
    api_poll_latency_ms: Percentiles
    visibility_resolution_s: float
    commits: int
    freshness_sample: list[float] = field(default_factory=list, repr=False)
    """Up to PLOT_SAMPLES freshness values in send order, for the plot."""
    costs: dict[str, Any] = field(default_factory=dict)
    """What the run cost the machine (see run_costs): cores per service, observer, commits."""
    machine: dict[str, Any] = field(default_factory=dict)
    """The machine's calibration figure and CPU limit, to compare runs across machines."""

    @classmethod
    def from_watch(
        cls,
        name: str,
        target_rate: float | None,
        entries: Sequence[LedgerEntry],
        watch: PipelineWatch,
        costs: dict[str, Any] | None = None,
        machine: dict[str, Any] | None = None,
    ) -> RunResult:
        """Measure a finished run: the feed's ledger entries and the watch that timed them."""
        missed = watch.missed_commits()
        if missed:
            raise MeasurementError(
                f"the watch missed {len(missed)} commits (sequence numbers {missed[:5]}...): "
                "they were expired before it polled the catalog; commit times would be guesses"
            )
        times = sorted(hop_times(entries, watch.commits, watch.visibility), key=lambda t: t.sent_at)
        first_sent, last_sent = times[0].sent_at, times[-1].sent_at
        last_visible = max(t.sent_at + t.visible_s for t in times)
        step = max(1, len(times) // PLOT_SAMPLES)
        acked = [t.acked_s for t in times]
        return cls(
            name=name,
            target_rate=target_rate,
            trades=len(times),
            symbols=len({e.symbol for e in entries}),
            produced_rate=_rate(len(times) - 1, last_sent - first_sent),
            delivered_rate=_rate(len(times), last_visible - first_sent),
            freshness=Percentiles.of([t.freshness_s for t in times]),
            hops={
                "ack": Percentiles.of(acked),
                "commit": Percentiles.of([t.committed_s - t.acked_s for t in times]),
                "visible": Percentiles.of([t.visible_s - t.committed_s for t in times]),
            },
            api_poll_latency_ms=Percentiles.of([v.latency_s * 1000 for v in watch.visibility]),
            visibility_resolution_s=round(_poll_gap(watch.visibility), 4),
            commits=len({c.snapshot_id for c in watch.commits}),
            freshness_sample=[t.freshness_s for t in times[::step]],
            costs=costs or {},
            machine=machine or {},
        )

    def context(self) -> str:
        """What a timing verdict carries besides the figure itself.

        The machine, each hop, where commits went and what everything cost: enough for a
        reader to tell a slow pipeline from a slow machine.
        """
        lines = [
            "machine: "
            + (
                ", ".join(f"{key} {value}" for key, value in self.machine.items()) or "not recorded"
            ),
            "per hop p50/p99 s: "
            + ", ".join(f"{hop} {p.p50:.2f}/{p.p99:.2f}" for hop, p in self.hops.items())
            + f"; visibility timed to {self.visibility_resolution_s * 1000:.0f} ms",
        ]
        timing = self.costs.get("commit_timing_ms") or {}
        if timing.get("commits"):
            lines.append(
                f"consumer commits, last {timing['commits']} (p50/p95 ms): "
                + ", ".join(
                    f"{name} {spread['p50']:.0f}/{spread['p95']:.0f}"
                    for name, spread in timing.items()
                    if isinstance(spread, dict)
                )
            )
        cores = self.costs.get("cores") or {}
        if cores:
            lines.append(
                f"CPU cores used during the run (of {self.costs.get('machine_cores')}): "
                + ", ".join(f"{name} {used:.2f}" for name, used in sorted(cores.items()))
            )
        if "api_requests_per_s" in self.costs:
            lines.append(
                f"observer: {self.costs['api_requests_per_s']} API requests/s, "
                f"{self.costs.get('catalog_loads_per_api_request')} catalog loads per request"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, rounded to the microsecond; the plot sample is kept for merging."""
        rounded: dict[str, Any] = _rounded(asdict(self))
        return rounded

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        """The inverse of `to_json` (xdist workers hand results to the controller this way)."""
        return cls(
            **{
                **data,
                "freshness": Percentiles(**data["freshness"]),
                "hops": {k: Percentiles(**v) for k, v in data["hops"].items()},
                "api_poll_latency_ms": Percentiles(**data["api_poll_latency_ms"]),
            }
        )


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


@dataclass
class PerformanceMonitor:
    """The session's measured runs: JSON and a plot in the artifacts, a table in the summary."""

    slo_s: float
    runs: list[RunResult] = field(default_factory=list)

    def add(self, run: RunResult) -> RunResult:
        """Keep one run for the report."""
        self.runs.append(run)
        return run

    def extend_from_json(self, runs: Iterable[dict[str, Any]]) -> None:
        """Take over runs measured by another process (an xdist worker)."""
        self.runs += [RunResult.from_json(run) for run in runs]

    def write(self, directory: Path) -> list[Path]:
        """Write performance.json and freshness.png; nothing when no run was measured."""
        if not self.runs:
            return []
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "slo_freshness_p99_s": self.slo_s,
            "machine": {"cores": os.cpu_count(), "load_average": list(os.getloadavg())},
            "runs": [run.to_json() for run in self.runs],
        }
        json_path = directory / JSON_NAME
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        from tests.e2e.utils.freshness_plot import PlottedRun, plot  # matplotlib on use only

        plot_path = directory / PLOT_NAME
        shown = [PlottedRun(r.name, r.freshness.p99, r.freshness_sample) for r in self.runs]
        plot(shown, self.slo_s, plot_path)
        return [json_path, plot_path]

    def summary_lines(self) -> list[str]:
        """A fixed-width table: one line per run, seconds unless marked."""
        header = (
            f"{'run':<28} {'trades':>7} {'target/s':>8} {'sent/s':>8} {'thru/s':>8} "
            f"{'ack p99':>8} {'commit p99':>10} {'fresh p50':>9} {'p95':>6} {'p99':>6} "
            f"{'api p95ms':>9}"
        )
        lines = [header]
        for run in self.runs:
            target = f"{run.target_rate:.0f}" if run.target_rate else "max"
            lines.append(
                f"{run.name:<28.28} {run.trades:>7} {target:>8} {run.produced_rate or 0:>8.0f} "
                f"{run.delivered_rate or 0:>8.0f} {run.hops['ack'].p99:>8.3f} "
                f"{run.hops['commit'].p99:>10.3f} {run.freshness.p50:>9.3f} "
                f"{run.freshness.p95:>6.2f} {run.freshness.p99:>6.2f} "
                f"{run.api_poll_latency_ms.p95:>9.1f}"
            )
        lines.append(f"freshness = sent to first served by the API; SLO p99 <= {self.slo_s:g} s")
        return lines
