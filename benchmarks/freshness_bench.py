"""Benchmark freshness, the feed and the observer on one full stack; results to benchmarks/results/.

In one run on one machine, with the machine's calibration figure recorded at the start:

- freshness at 1,000 msg/s for 30 s (`--rounds` times) and at 10 msg/s, after a warm-up,
  measured as the gate measures it (FeedPool, PipelineWatch, the same percentiles), with each
  run's per-hop breakdown, consumer commit timing and CPU per service
  (goals: p99 <= 1.0 s at 1,000 msg/s, <= 0.8 s at 10 msg/s; <= 2.5 s in the slow mode,
  `--cpus 1`);
- the observer's cost: k2-query-api's and iceberg-rest's CPU for 20 s with the watch polling
  against 20 s without it (goal: <= 0.1 core between them), and catalog loads per API request
  (goal: <= 0.1);
- the feed's capacity: 200,000 trades flat out from the worker processes while the stack runs
  (goal: >= 20,000 msg/s).

`--cpus N` runs the stack and this process (with its feed workers) in one cgroup of N cores,
as the gate's `--e2e-cpus` does. Results: `benchmarks/results/freshness.json`, or
`freshness-cpus-N.json`.

    python -m benchmarks.freshness_bench [--cpus 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.utils.docker_manager import E2EDockerManager
from tests.e2e.utils.hops import Endpoints, api_total, unique_symbols
from tests.e2e.utils.performance_monitor import RunResult
from tests.e2e.utils.pipeline_watch import PipelineWatch
from tests.e2e.utils.polling import poll_until
from tests.e2e.utils.run_costs import CostMeter

from benchmarks.machine import describe, write_results
from e2e_stack import ComposeProject, cpu_meter
from e2e_stack.cpu_limit import CpuLimit, held
from k2.feed.pool import FeedPool
from k2.model.names import ICEBERG_TABLE

ROOT = Path(__file__).resolve().parent.parent
GOALS = {
    "freshness_p99_1000_per_s_s": 1.0,
    "freshness_p99_1000_per_s_slow_mode_s": 2.5,
    "freshness_p99_10_per_s_s": 0.8,
    "observer_cores": 0.1,
    "catalog_loads_per_api_request": 0.1,
    "feed_capacity_msg_per_s": 20_000,
}
API = "k2-query-api"
CATALOG = "iceberg-rest"


def _api_client(project: ComposeProject, endpoints: Endpoints) -> httpx.Client:
    key = project.service_env(API)["K2_API_KEY"]
    return httpx.Client(base_url=endpoints.api_url, headers={"X-API-Key": key}, timeout=30)


def measured_run(
    name: str,
    rate: float,
    count: int,
    project: ComposeProject,
    endpoints: Endpoints,
    api: httpx.Client,
    pool: FeedPool,
    machine: dict[str, Any],
) -> dict[str, Any]:
    """One run as the gate makes it; exactness is checked through the API totals."""
    symbols = unique_symbols(4)
    catalog = endpoints.catalog()
    with PipelineWatch(api, symbols, lambda: catalog.load_table(ICEBERG_TABLE)) as watch:
        meter = CostMeter(
            (project.engine, project.config["services"]),
            pool.pids,
            endpoints.api_url,
            endpoints.consumer_health_url,
            lambda: watch.requests,
        )
        before = meter.snapshot()
        ledger = pool.send(symbols, count=count, rate=rate, seed=count)
        expected = Counter(entry.symbol for entry in ledger)
        watch.wait_until_visible(expected, 120)
        costs = meter.report(before, meter.snapshot())
    watch.raise_if_failed()
    result = RunResult.from_watch(name, rate, ledger.entries, watch, costs=costs, machine=machine)
    document = result.to_json()
    document.pop("freshness_sample")
    return document


def observer_cost(
    project: ComposeProject, api: httpx.Client, endpoints: Endpoints, seconds: float = 20.0
) -> dict[str, Any]:
    """API and catalog CPU with the watch polling an idle stack against without it."""
    states = project.engine.observe([API, CATALOG])
    pids = {name: state.pid for name, state in states.items()}
    catalog = endpoints.catalog()

    def cores(with_watch: bool) -> tuple[dict[str, float], int, int]:
        loads_before = int(httpx.get(f"{endpoints.api_url}/health").json()["catalog_loads"])
        before, began = cpu_meter.read(pids, {}), time.monotonic()
        requests = 0
        if with_watch:
            symbols = unique_symbols(4)
            with PipelineWatch(api, symbols, lambda: catalog.load_table(ICEBERG_TABLE)) as w:
                time.sleep(seconds)  # the watch works in its threads meanwhile
                requests = w.requests
        else:
            time.sleep(seconds)
        used = cpu_meter.read(pids, {}).since(before, time.monotonic() - began)
        loads = int(httpx.get(f"{endpoints.api_url}/health").json()["catalog_loads"])
        return used, requests, loads - loads_before

    idle, _, idle_loads = cores(False)
    watched, requests, loads = cores(True)
    extra = {name: round(watched[name] - idle.get(name, 0.0), 3) for name in watched}
    return {
        "seconds_each": seconds,
        "idle_cores": idle,
        "watched_cores": watched,
        "attributable_cores": extra,
        "attributable_total_cores": round(
            sum(used for name, used in extra.items() if name != "machine"), 3
        ),
        "api_requests_per_s": round(requests / seconds, 1),
        "catalog_loads_idle": idle_loads,
        "catalog_loads_watched": loads,
        "catalog_loads_per_api_request": round(loads / requests, 3) if requests else None,
    }


def feed_capacity(pool: FeedPool, trades: int = 200_000) -> dict[str, Any]:
    """Flat out from every worker while the stack runs (and consumes)."""
    ledger = pool.send(unique_symbols(8), count=trades, rate=None, seed=7)
    sent = sorted(entry.sent_monotonic for entry in ledger)
    acked = max(entry.ack_monotonic for entry in ledger)
    return {
        "trades": len(ledger),
        "workers": pool.processes,
        "sent_msg_per_s": round((len(sent) - 1) / (sent[-1] - sent[0]), 0),
        "acknowledged_msg_per_s": round(len(sent) / (acked - sent[0]), 0),
    }


def _set_table_properties(endpoints: Endpoints, properties: dict[str, str]) -> None:
    table = endpoints.catalog().load_table(ICEBERG_TABLE)
    with table.transaction() as transaction:
        transaction.set_properties(properties)


def measure(
    project: ComposeProject,
    results: dict[str, Any],
    args: argparse.Namespace,
    machine: dict[str, Any],
) -> None:
    """Warm the pipeline up, then every measured run, into `results`."""
    endpoints = Endpoints.of(project)
    with (
        _api_client(project, endpoints) as api,
        FeedPool(endpoints.bootstrap, endpoints.registry_url) as pool,
    ):
        warm = unique_symbols(4)
        pool.send(warm, count=5000, rate=1000, seed=1)
        poll_until(
            lambda: sum(api_total(api, s) for s in warm), lambda n: n >= 5000, 120, "warm-up"
        )
        if args.table_property:
            properties = dict(item.split("=", 1) for item in args.table_property)
            _set_table_properties(endpoints, properties)
            results["table_properties"] = properties
        runs = [
            measured_run(
                f"1000/s x 30s #{n + 1}", 1000, 30_000, project, endpoints, api, pool, machine
            )
            for n in range(args.rounds)
        ]
        slow = measured_run("10/s x 10s", 10, 100, project, endpoints, api, pool, machine)
        results["freshness_1000_per_s"] = {
            "p99_s": [round(run["freshness"]["p99"], 3) for run in runs],
            "median_p99_s": round(statistics.median(r["freshness"]["p99"] for r in runs), 3),
            "runs": runs,
        }
        results["freshness_10_per_s"] = {
            "p99_s": round(slow["freshness"]["p99"], 3),
            "run": slow,
        }
        results["observer"] = observer_cost(project, api, endpoints)
        if args.cpus is None:  # the goal is stated for the stack on the whole machine
            results["feed_capacity"] = feed_capacity(pool)


def main() -> None:
    """Start a full stack (CPU-limited if asked), measure, tear it down, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpus", type=float, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--table-property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set on the live table after the warm-up (to compare writer settings)",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {**describe(), "cpu_limit_cores": args.cpus},
        "goals": GOALS,
    }
    machine = {
        "calibration_ms": results["machine"]["calibration"]["best_ms"],
        "cpu_limit_cores": args.cpus,
    }
    limit = CpuLimit(args.cpus, "k2bench") if args.cpus is not None else None
    with held(limit, os.getpid()) if limit else contextlib.nullcontext():
        manager = E2EDockerManager(cgroup_parent=limit.cgroup_parent if limit else None)
        stack = manager.stack
        try:
            began = time.monotonic()
            stack.start_now("full")
            results["full_profile_ready_s"] = round(time.monotonic() - began, 2)
            project = stack.project
            measure(project, results, args, machine)
        finally:
            logs = ROOT / ".build" / "bench" / f"logs-{stack.project.name}"
            logs.mkdir(parents=True, exist_ok=True)
            for service in stack.project.config["services"]:
                (logs / f"{service}.log").write_text(stack.project.engine.logs(service))
            results["logs"] = str(logs.relative_to(ROOT))
            manager.stop_now()
    suffix = f"-cpus-{args.cpus:g}" if args.cpus is not None else ""
    out = args.output or ROOT / "benchmarks" / "results" / f"freshness{suffix}.json"
    write_results(out, results)
    print(json.dumps({k: v for k, v in results.items() if k != "freshness_1000_per_s"}, indent=2))
    print("1000/s p99:", results["freshness_1000_per_s"]["p99_s"])


if __name__ == "__main__":
    main()
