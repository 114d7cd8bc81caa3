"""How often a feed survives a Kafka restart: librdkafka's plain client against the renewing one.

Each round feeds two streams side by side, each of its own symbols at the fault matrix's rate
(200 msg/s, 1,200 trades): one through a plain confluent_kafka.Producer, one through the
RenewingProducer that `open_feed` uses. After 3 to 6.5 s of sending, Kafka is restarted (`docker
restart`, the restart-kafka fault) and the stack waited for; then each stream's outcome is
recorded: every trade acknowledged, or the DeliveryError it ended with, how long it took, and
the renewing client's renewals. Both face the same restart, so the comparison holds on a noisy
machine.

`--profile full` adds consumer-crypto and k2-query-api, reading and writing Kafka as in the
gate's fault matrix. `--cpus N` runs the stack and this process in one cgroup of N cores, as
the gate's slow mode.
Results: `benchmarks/results/kafka-restart-PROFILE[-cpus-N].json`.

    python -m benchmarks.kafka_restart_bench [--rounds 10] [--profile full] [--cpus 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from tests.e2e.utils.docker_manager import E2EDockerManager
from tests.e2e.utils.hops import Endpoints, unique_symbols

from benchmarks.machine import describe, head_commit, write_results
from e2e_stack.cpu_limit import CpuLimit, held
from e2e_stack.faults import Faults
from k2.feed import FeedProducer, TradeSerializer, generate_frames, open_feed, producer_config
from k2.feed.renewal import RenewingProducer
from k2.model.names import TOPIC, value_subject

ROOT = Path(__file__).resolve().parent.parent
RATE = 200.0
COUNT = 1_200
LEADS_S = (3.0, 4.5, 5.5, 6.0, 6.5)
"""Sending before the restart, round after round. The fault matrix restarts Kafka once the
first trade is served, which on a loaded machine is near the end of the stream's 6 s of
sending, so rounds restart it from mid-stream to just after the last send."""


def _plain_feed(endpoints: Endpoints) -> FeedProducer:
    """A feed over a bare confluent_kafka.Producer, configured as open_feed's."""
    registry = SchemaRegistryClient({"url": endpoints.registry_url})
    serializer = TradeSerializer.register(registry, value_subject(TOPIC))
    return FeedProducer(Producer(producer_config(endpoints.bootstrap)), serializer)


class _Run(threading.Thread):
    """One stream's send in a thread, and how it ended."""

    def __init__(self, feed: FeedProducer, seed: int) -> None:
        super().__init__(daemon=True)
        self.feed = feed
        self.seed = seed
        self.symbols = unique_symbols(2)
        self.error: str | None = None
        self.ended_s: float | None = None

    def run(self) -> None:
        began = time.monotonic()
        try:
            self.feed.send_frames(
                generate_frames(self.symbols, seed=self.seed), count=COUNT, rate=RATE
            )
        except Exception as exc:
            self.error = str(exc).splitlines()[0]
        self.ended_s = round(time.monotonic() - began, 2)

    def outcome(self) -> dict[str, Any]:
        producer = self.feed.producer
        renewals = producer.renewals if isinstance(producer, RenewingProducer) else []
        return {
            "acknowledged": len(self.feed.ledger),
            "complete": self.error is None and len(self.feed.ledger) == COUNT,
            "error": self.error,
            "ended_after_s": self.ended_s,
            "renewals": [{"stalled_s": r.stalled_s, "resent": r.resent} for r in renewals],
        }


def one_round(endpoints: Endpoints, faults: Faults, seed: int, lead_s: float) -> dict[str, Any]:
    """Both streams through one restart of Kafka, `lead_s` after they began."""
    runs = {
        "plain": _Run(_plain_feed(endpoints), seed),
        "renewing": _Run(open_feed(endpoints.bootstrap, endpoints.registry_url), seed + 1),
    }
    for run in runs.values():
        run.start()
    time.sleep(lead_s)  # trades flow this long before the fault (load, not a wait)
    record = faults.restart("kafka")
    for run in runs.values():
        run.join(timeout=180)
        if run.is_alive():
            raise RuntimeError("a stream did not end within 180 s of the restart")
    assert record.ready_again is not None
    return {
        "lead_s": lead_s,
        "restart_s": round(record.ready_again - record.began, 2),
        **{name: run.outcome() for name, run in runs.items()},
    }


def main() -> None:
    """Start a profile, restart Kafka `--rounds` times under two feeds, write results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cpus", type=float, default=None)
    parser.add_argument("--profile", choices=("minimal", "full"), default="minimal")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {**describe(), "cpu_limit_cores": args.cpus},
        "commit": head_commit(ROOT),
        "profile": args.profile,
        "rate_msg_per_s": RATE,
        "trades_per_stream": COUNT,
    }
    rounds: list[dict[str, Any]] = []
    limit = CpuLimit(args.cpus, "k2bench") if args.cpus is not None else None
    with held(limit, os.getpid()) if limit else contextlib.nullcontext():
        manager = E2EDockerManager(cgroup_parent=limit.cgroup_parent if limit else None)
        try:
            manager.stack.start_now(args.profile)
            endpoints = Endpoints.of(manager.project)
            faults = Faults(manager.stack)
            for number in range(args.rounds):
                lead_s = LEADS_S[number % len(LEADS_S)]
                rounds.append(one_round(endpoints, faults, 1000 + 2 * number, lead_s))
                print(json.dumps(rounds[-1]), flush=True)
        finally:
            manager.stop_now()
    results["rounds"] = rounds
    results["summary"] = {
        name: {
            "complete": sum(r[name]["complete"] for r in rounds),
            "failed": sum(not r[name]["complete"] for r in rounds),
            "renewed": sum(bool(r[name]["renewals"]) for r in rounds),
        }
        for name in ("plain", "renewing")
    }
    suffix = f"-{args.profile}" + (f"-cpus-{args.cpus:g}" if args.cpus is not None else "")
    out = args.output or ROOT / "benchmarks" / "results" / f"kafka-restart{suffix}.json"
    write_results(out, results)
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
