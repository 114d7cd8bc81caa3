"""Benchmark the K2 services on the full stack; results go to benchmarks/results/pipeline.json.

- Sustained throughput into Iceberg: the topic is filled while consumer-crypto is stopped,
  then the consumer is started and its own `written` counter is sampled until it has
  written everything; the rate is taken between the first and the last sample that moved,
  so start-up (table load, assignment) is reported apart (goal >= 20,000 msg/s). Repeated
  (--rounds, default 3) on new symbols each time; the median round is the figure.
- API latency: `/v1/trades?symbol=...&limit=1000` over a warm table, measured client side
  on loopback (goal p95 <= 100 ms).

    python -m benchmarks.pipeline_bench [--trades 200000] [--rounds 3] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.utils.docker_manager import E2EDockerManager
from tests.e2e.utils.hops import Endpoints, unique_symbols
from tests.e2e.utils.performance_monitor import Percentiles

from benchmarks.machine import describe, write_results
from e2e_stack import ComposeProject
from k2.feed import open_feed
from k2.feed.generator import generate_frames

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "pipeline.json"
GOALS = {"throughput_msg_per_s": 20_000, "api_limit_1000_p95_ms": 100}


def _written(client: httpx.Client) -> int:
    health: dict[str, Any] = client.get("/health").json()
    return int(health["written"])


def throughput(project: ComposeProject, endpoints: Endpoints, trades: int) -> dict[str, Any]:
    """Fill the topic with the consumer stopped, then time the consumer draining it."""
    project.engine.stop("consumer-crypto")
    symbols = unique_symbols(10)
    feed = open_feed(endpoints.bootstrap, endpoints.registry_url)
    produced = feed.send_frames(generate_frames(symbols, seed=1), count=trades)
    project.engine.start("consumer-crypto")
    started = time.monotonic()
    health_port = project.host_port("consumer-crypto", 8081)
    samples: list[tuple[float, int]] = []
    with httpx.Client(base_url=f"http://{project.host}:{health_port}", timeout=5) as client:
        deadline = started + 600
        written = 0
        while written < trades and time.monotonic() < deadline:
            try:
                written = _written(client)
            except httpx.HTTPError:
                written = 0  # still starting
            samples.append((time.monotonic() - started, written))
            time.sleep(0.25)
    if written < trades:
        raise SystemExit(f"consumer wrote {written} of {trades} within 600 s")
    moving = [(t, n) for t, n in samples if n > 0]
    first_t, first_n = moving[0]
    last_t, last_n = moving[-1]
    return {
        "trades": trades,
        "feed_msg_per_s": round(produced.rate, 0),
        "first_rows_after_start_s": round(first_t, 2),
        "drain_total_s": round(last_t, 2),
        "sustained_msg_per_s": round((last_n - first_n) / (last_t - first_t), 0)
        if last_t > first_t
        else None,
        "overall_msg_per_s_incl_startup": round(trades / last_t, 0),
        "symbols": symbols,
    }


def api_latency(
    endpoints: Endpoints, key: str, symbols: list[str], requests: int
) -> dict[str, Any]:
    """Client-side latency of limit=1000 queries, after a short warm-up."""
    timings: list[float] = []
    with httpx.Client(base_url=endpoints.api_url, headers={"X-API-Key": key}, timeout=30) as c:
        for i in range(requests + 20):
            symbol = symbols[i % len(symbols)]
            began = time.perf_counter()
            response = c.get("/v1/trades", params={"symbol": symbol, "limit": 1000})
            elapsed = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            if len(response.json()["data"]) != 1000:
                raise SystemExit(f"{symbol}: expected a full page of 1000 trades")
            if i >= 20:
                timings.append(elapsed)
    spread = Percentiles.of(timings)
    return {
        "requests": requests,
        "p50_ms": round(spread.p50, 1),
        "p95_ms": round(spread.p95, 1),
        "p99_ms": round(spread.p99, 1),
        "max_ms": round(spread.max, 1),
    }


def main() -> None:
    """Start a full stack, measure, tear it down, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trades", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    manager = E2EDockerManager()
    stack = manager.stack
    results: dict[str, Any] = {"machine": describe(), "goals": GOALS}
    try:
        started = time.monotonic()
        stack.start_now("full")
        results["full_ready_s"] = round(time.monotonic() - started, 2)
        project = stack.project
        endpoints = Endpoints.of(project)
        rounds = [throughput(project, endpoints, args.trades) for _ in range(args.rounds)]
        rates = [r["sustained_msg_per_s"] for r in rounds if r["sustained_msg_per_s"]]
        results["throughput"] = {
            "median_sustained_msg_per_s": statistics.median(rates),
            "rounds": rounds,
        }
        key = project.service_env("k2-query-api")["K2_API_KEY"]
        results["api_latency"] = api_latency(endpoints, key, rounds[-1]["symbols"], args.requests)
    finally:
        manager.stop_now()
    write_results(RESULTS, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
