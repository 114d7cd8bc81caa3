"""The freshness plot: a CDF per run against the SLO, and freshness over each run's time.

A CDF shows the whole distribution at once (where p99 sits against the SLO line), and the
time series shows whether freshness drifted as a run went on (a backlog building up).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines
import matplotlib.pyplot as plt


class PlottedRun(NamedTuple):
    """What the plot shows of one measured run."""

    name: str
    p99_s: float
    freshness_sample: Sequence[float]


def plot(runs: Sequence[PlottedRun], slo_s: float, path: Path) -> None:
    """Write one PNG with both panels for every run."""
    figure, (cdf, series) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    try:
        for run in runs:
            values = sorted(run.freshness_sample)
            share = [(i + 1) / len(values) for i in range(len(values))]
            label = f"{run.name} (p99 {run.p99_s:.2f} s)"
            cdf.step(values, share, where="post", label=label)
            series.plot(
                [
                    i / max(1, len(run.freshness_sample) - 1)
                    for i in range(len(run.freshness_sample))
                ],
                run.freshness_sample,
                ".",
                markersize=2,
                label=run.name,
            )
        for axes in (cdf, series):
            axes.grid(alpha=0.3)
        cdf.axvline(slo_s, color="red", linestyle="--", label=f"SLO {slo_s:g} s")
        cdf.axhline(0.99, color="grey", linestyle=":", linewidth=1)
        cdf.set_xlabel("freshness: sent to first served by the API (s)")
        cdf.set_ylabel("share of trades")
        cdf.set_title("Freshness CDF")
        cdf.legend(fontsize="small", loc="lower right")
        series.axhline(slo_s, color="red", linestyle="--")
        series.set_xlabel("position in run (0 = first trade sent, 1 = last)")
        series.set_ylabel("freshness (s)")
        series.set_title("Freshness over each run")
        figure.tight_layout()
        figure.savefig(path)
    finally:
        plt.close(figure)
