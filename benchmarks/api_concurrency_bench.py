"""Benchmark k2-query-api under concurrent load while trades flow; results to api-concurrency.json.

The issue-11 finding: 200 `/v1/trades?limit=1000` requests from 20 threads while 1,000 msg/s
flowed gave a client p95 of 3.5-6.6 s against a server-reported p95 of 0.75 s. This measures
the same load and splits the server's own time (Server-Timing) into the wait for a worker
(`queue`) and the work, so the gap between what a client waits and what the server accounts
for is a number (goal: client p95 <= 2x the server's p95).

    python -m benchmarks.api_concurrency_bench [--clients 20] [--requests 200] [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.utils.docker_manager import E2EDockerManager
from tests.e2e.utils.hops import Endpoints, api_served, unique_symbols
from tests.e2e.utils.performance_monitor import Percentiles
from tests.e2e.utils.polling import poll_until

from benchmarks.machine import describe, write_results
from k2.feed import open_feed
from k2.feed.generator import generate_frames

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "api-concurrency.json"
GOALS = {"client_to_server_p95_ratio": 2.0}
PREFILL = 40_000
"""Trades in the table before the load: every queried symbol has full pages of 1000."""


def server_timing(header: str) -> dict[str, float]:
    """`name;dur=ms, ...` as a dict."""
    phases: dict[str, float] = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";dur=")
        if rest:
            phases[name] = float(rest)
    return phases


def _spread(values: list[float]) -> dict[str, float]:
    spread = Percentiles.of(values)
    return {"p50": round(spread.p50, 1), "p95": round(spread.p95, 1), "max": round(spread.max, 1)}


def load(api_url: str, key: str, symbols: list[str], clients: int, requests: int) -> dict[str, Any]:
    """`requests` queries from `clients` threads, each a closed loop; client and server times."""
    rows: list[tuple[float, dict[str, float]]] = []
    lock = threading.Lock()
    per_client = requests // clients

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=api_url, headers={"X-API-Key": key}, timeout=60) as c:
            for _ in range(per_client):
                began = time.perf_counter()
                response = c.get(
                    "/v1/trades", params={"symbol": rng.choice(symbols), "limit": 1000}
                )
                elapsed = (time.perf_counter() - began) * 1000
                response.raise_for_status()
                with lock:
                    rows.append((elapsed, server_timing(response.headers["Server-Timing"])))

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - began
    phases = sorted({name for _, timing in rows for name in timing})
    server = [sum(v for k, v in t.items() if k != "total") for _, t in rows]
    totals = [t.get("total", s) for (_, t), s in zip(rows, server, strict=True)]
    client_p95 = Percentiles.of([c for c, _ in rows]).p95
    return {
        "clients": clients,
        "requests": len(rows),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(rows) / wall, 1),
        "client_ms": _spread([c for c, _ in rows]),
        "server_total_ms": _spread(totals),
        "server_phases_ms": {p: _spread([t.get(p, 0.0) for _, t in rows]) for p in phases},
        "client_to_server_p95_ratio": round(client_p95 / Percentiles.of(totals).p95, 2),
    }


def main() -> None:
    """Start a full stack, prefill, load it while trades flow, tear it down, write results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    manager = E2EDockerManager()
    results: dict[str, Any] = {"machine": describe(), "goals": GOALS, "args": vars(args)}
    try:
        manager.stack.start_now("full")
        project = manager.stack.project
        endpoints = Endpoints.of(project)
        key = project.service_env("k2-query-api")["K2_API_KEY"]
        symbols = unique_symbols(10)
        feed = open_feed(endpoints.bootstrap, endpoints.registry_url)
        feed.send_frames(generate_frames(symbols, seed=5), count=PREFILL)
        with httpx.Client(base_url=endpoints.api_url, headers={"X-API-Key": key}) as api:
            poll_until(
                lambda: api_served(api, symbols),
                lambda n: n >= PREFILL,
                180,
                f"{PREFILL} prefilled trades at the API",
            )
        flowing = unique_symbols(4)
        stream = open_feed(endpoints.bootstrap, endpoints.registry_url)
        feeder = threading.Thread(
            target=stream.send_frames,
            args=(generate_frames(flowing, seed=9),),
            kwargs={"count": int(args.rate * 120), "rate": args.rate},
            daemon=True,
        )
        feeder.start()
        poll_until(
            lambda: len(stream.ledger),
            lambda n: n >= args.rate,
            60,
            "a second's worth of the stream acknowledged (the load starts on a steady flow)",
        )
        results["one_client"] = load(endpoints.api_url, key, symbols, 1, 40)
        results["concurrent"] = load(endpoints.api_url, key, symbols, args.clients, args.requests)
    finally:
        manager.stop_now()
    write_results(RESULTS, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
