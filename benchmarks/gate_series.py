"""Run the gate N times in a row from a fresh clone; wall time and freshness p99 of each.

The proof that `tox -e e2e` is green on this machine, not once but every time, in the
normal mode and in the slow mode (`--cpus`, which sets K2_E2E_CPUS for the runs):

    python -m benchmarks.gate_series --runs 10
    python -m benchmarks.gate_series --runs 10 --cpus 1

It clones this repository's HEAD into a temporary directory (what a new user has: no tox
environment, no artifacts; images are the engine's, built by the first run if missing),
runs `tox -e e2e` there `--runs` times without stopping at a red run, and writes
benchmarks/results/gate-series[-cpus-N].json: per run the exit code, wall time, test counts,
and each measured run's freshness p99 with its per-hop p99s; the machine with its
calibration figure; how many runs in a row were green.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.e2e.utils.performance_monitor import JSON_NAME

from benchmarks.gate_bench import junit_counts
from benchmarks.machine import describe, write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TAIL_CHARS = 3000


def _measured(clone: Path) -> list[dict[str, Any]]:
    """Each measured run's name, rate, freshness p99 and per-hop p99s, from performance.json."""
    path = clone / "e2e-artifacts" / JSON_NAME
    if not path.exists():
        return []
    runs = json.loads(path.read_text())["runs"]
    return [
        {
            "name": run["name"],
            "produced_rate": run["produced_rate"],
            "freshness_p99_s": run["freshness"]["p99"],
            "hops_p99_s": {hop: p["p99"] for hop, p in run["hops"].items()},
            "machine": run.get("machine", {}),
        }
        for run in runs
    ]


def one_run(clone: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    """`tox -e e2e` once in `clone`, timed from the outside; its output kept in `log`."""
    shutil.rmtree(clone / "e2e-artifacts", ignore_errors=True)
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(
            ["tox", "-e", "e2e"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    wall = round(time.perf_counter() - started, 1)
    result: dict[str, Any] = {
        "exit_code": proc.returncode,
        "wall_s": wall,
        **junit_counts(clone / "e2e-artifacts"),
    }
    result["measured"] = _measured(clone)
    if proc.returncode != 0:
        result["output_tail"] = log.read_text(errors="replace")[-TAIL_CHARS:]
    return result


def longest_green_streak(runs: list[dict[str, Any]]) -> int:
    """The longest stretch of consecutive runs that exited 0."""
    best = current = 0
    for run in runs:
        current = current + 1 if run["exit_code"] == 0 else 0
        best = max(best, current)
    return best


def main() -> None:
    """Clone, run the gate `--runs` times, write the series."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cpus", type=float, default=None, help="the slow mode: K2_E2E_CPUS")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    suffix = f"-cpus-{args.cpus:g}" if args.cpus is not None else ""
    out = args.output or RESULTS / f"gate-series{suffix}.json"
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "K2_E2E_CPUS")}
    if args.cpus is not None:
        env["K2_E2E_CPUS"] = f"{args.cpus:g}"
    results: dict[str, Any] = {
        "machine": {**describe(), "cpu_limit_cores": args.cpus},
        "commit": commit,
        "command": "tox -e e2e"
        + (f" with K2_E2E_CPUS={args.cpus:g}" if args.cpus is not None else ""),
        "runs": [],
    }
    logs = ROOT / ".build" / "bench" / f"gate-series{suffix}"
    logs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="k2-gate-series-") as tmp:
        clone = Path(tmp) / "k2"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        for index in range(1, args.runs + 1):
            run = one_run(clone, env, logs / f"run-{index}.log")
            results["runs"].append(run)
            p99 = ", ".join(f"{m['freshness_p99_s']:.2f}" for m in run["measured"])
            print(
                f"run {index}: exit {run['exit_code']}, {run['wall_s']} s, "
                f"{run['tests']} tests, {run['failures']} failed, freshness p99 [{p99}] s",
                flush=True,
            )
            results["green_in_a_row"] = longest_green_streak(results["runs"])
            write_results(out, results)
    print(f"{results['green_in_a_row']} of {args.runs} green in a row; written to {out}")


if __name__ == "__main__":
    main()
