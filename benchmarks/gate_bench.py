"""Benchmark the pre-release gate; results go to benchmarks/results/gate.json.

In one run on one machine (figures are only compared within a run):
- plain `docker compose ... --profile full up --wait` against the layer's time to first test
  on the same services, interleaved pair by pair;
- the gate's wall time: `tox -e e2e` end to end with the images already built (goal <= 2 min),
  and where it went: seconds per test module (setup, call and teardown, from its junit.xml)
  and, of the fault matrix's, how long services were deliberately out (the outages it holds
  the pipeline to, a floor no scheduling on the one stack removes);
- the freshness and throughput figures that gate run measured (its performance.json).

    python -m benchmarks.gate_bench [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tests.e2e.utils.performance_monitor import JSON_NAME

from benchmarks.machine import describe, head_commit, write_results
from benchmarks.stack_bench import startup

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "gate.json"
ARTIFACTS = ROOT / "e2e-artifacts"
GOALS = {"gate_wall_s": 120.0, "freshness_p99_s": 3.0, "layer_to_plain_ratio": 1.0}


def gate() -> dict[str, Any]:
    """`tox -e e2e` once, timed from the outside; a red gate stops the benchmark."""
    subprocess.run(["tox", "-e", "e2e", "--notest"], cwd=ROOT, check=True, capture_output=True)
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    started = time.perf_counter()
    proc = subprocess.run(["tox", "-e", "e2e"], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = round(time.perf_counter() - started, 1)
    if proc.returncode != 0:
        sys.exit(f"the gate failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")
    suite = _junit_suite(ARTIFACTS)
    if suite is None:
        sys.exit(f"the gate passed but wrote no junit.xml in {ARTIFACTS}")
    return {"wall_s": wall, **_counts(suite), "where": where_it_went(suite, ARTIFACTS)}


def junit_counts(artifacts: Path) -> dict[str, Any]:
    """Test counts and pytest's own time from the junit.xml a gate run wrote (zeros if none)."""
    return _counts(_junit_suite(artifacts))


def _junit_suite(artifacts: Path) -> ET.Element | None:
    """The testsuite of the junit.xml a gate run wrote, read once; None if there is none."""
    path = artifacts / "junit.xml"
    # The junit.xml the gate itself just wrote, not untrusted input.
    return ET.parse(path).getroot().find("testsuite") if path.exists() else None  # noqa: S314


def _counts(suite: ET.Element | None) -> dict[str, Any]:
    if suite is None:
        return {"pytest_s": 0.0, "tests": 0, "failures": 0, "skipped": 0}
    return {
        "pytest_s": float(suite.get("time", "0")),
        "tests": int(suite.get("tests", "0")),
        "failures": int(suite.get("failures", "0")) + int(suite.get("errors", "0")),
        "skipped": int(suite.get("skipped", "0")),
    }


def where_it_went(suite: ET.Element, artifacts: Path) -> dict[str, Any]:
    """Seconds per test module of a gate run, and the fault matrix's deliberate outages."""
    modules: dict[str, float] = {}
    for case in suite.iter("testcase"):
        module = case.get("classname", "?")
        modules[module] = modules.get(module, 0.0) + float(case.get("time", "0"))
    faults = json.loads((artifacts / "fault-matrix.json").read_text())
    return {
        "module_s": {m: round(t, 1) for m, t in sorted(modules.items(), key=lambda i: -i[1])},
        "fault_matrix_outages_s": round(sum(row["outage_s"] for row in faults), 1),
        "fault_matrix_cases": len(faults),
    }


def measured_runs() -> list[dict[str, Any]]:
    """The gate's freshness and throughput runs, without the plot samples."""
    document = json.loads((ARTIFACTS / JSON_NAME).read_text())
    return [{k: v for k, v in run.items() if k != "freshness_sample"} for run in document["runs"]]


def main() -> None:
    """Measure start-up pairs, then one gate run; write benchmarks/results/gate.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "k2.stack", "images"], cwd=ROOT, check=True)
    env_dir = ROOT / ".build" / "bench"
    env_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": describe(), "commit": head_commit(ROOT), "goals": GOALS}
    results["startup_full_profile"] = startup(args.repeats, env_dir, profile="full")
    results["gate"] = gate()
    results["gate_runs"] = measured_runs()
    write_results(RESULTS, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
