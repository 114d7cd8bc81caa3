"""Truthful health: healthy only while the writer is really consuming and really committing.

Healthy means all of: the first partition assignment arrived and partitions are assigned, the
consumer polled within the last few seconds, Kafka answered within the last few seconds, the
Iceberg table is loaded, the last Iceberg commit did not fail and none has run for too long, no
consumed record has waited longer than a limit for its commit, and the schema registry is not
failing. Otherwise the answer is unhealthy with the reasons, each naming what is out. The counters
ride along in the same JSON document, served over HTTP (`GET /health`: 200 when healthy, 503 when
not) for the E2E tests and people, and as one line of text (`GET /ready`: `healthy`, or `unhealthy:
<reasons>` with 503) for the container healthcheck, which runs `curl` on it: a probe every second
or two must cost little, and a Python interpreter per probe cost the stack more CPU than the probe
was worth.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Final

from k2.consumer.commit_timing import PHASES, CommitBreakdown

log = logging.getLogger(__name__)

MAX_CAUSE_CHARS: Final = 200
"""A failure's message in a reason is cut here: the healthcheck's output is kept short by the
engine, and the reason must still fit beside the others."""

TIMING_WINDOW: Final = 256
"""Recent commits whose timing the health document summarises (minutes at a commit a second)."""


@dataclass(frozen=True, slots=True)
class HealthLimits:
    """How stale polling and how old an uncommitted record may get before health fails.

    `max_kafka_silence_s`: no response from any broker for this long means Kafka is out (it
    answers fetches about 20 times a second). `max_commit_s`: an Iceberg commit running this
    long is hung (they take well under a second here, a few on a machine twice as slow).
    """

    max_poll_age_s: float
    max_uncommitted_s: float
    max_kafka_silence_s: float = 5.0
    max_commit_s: float = 10.0


def _cut(message: str) -> str:
    return message if len(message) <= MAX_CAUSE_CHARS else message[: MAX_CAUSE_CHARS - 1] + "…"


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(now - then, 3)


def _spread(values: list[float]) -> dict[str, float]:
    """p50, p95 and max of some milliseconds (inclusive percentiles)."""
    if len(values) == 1:
        return {"p50": round(values[0], 1), "p95": round(values[0], 1), "max": round(values[0], 1)}
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return {"p50": round(cuts[9], 1), "p95": round(cuts[18], 1), "max": round(max(values), 1)}


class HealthState:
    """Counters and readiness facts, written by the writer's threads, read by the HTTP thread."""

    def __init__(
        self, limits: HealthLimits, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._table_loaded = False
        self._assignment_seen = False
        self._assigned: tuple[int, ...] = ()
        self._last_poll: float | None = None
        self._last_commit: float | None = None
        self._uncommitted_since: float | None = None
        self._registry_down_since: float | None = None
        self._registry_error = ""
        self._last_error: tuple[float, str] | None = None
        self._stopping = False
        self._lag: dict[int, int | None] = {}
        # (waited ms, breakdown) of the latest commits, for the timing summary.
        self._timings: deque[tuple[float, CommitBreakdown]] = deque(maxlen=TIMING_WINDOW)
        self._counters = {
            "consumed": 0,
            "written": 0,
            "dead_lettered": 0,
            "commits": 0,
            "skipped_rows": 0,
            "commit_conflicts": 0,
            "abandoned_batches": 0,
            "group_commit_failures": 0,
            "replayed_rows": 0,
        }
        self._last_group_commit: float | None = None
        self._kafka_watched_since: float | None = None
        self._kafka_answered: float | None = None
        self._brokers: dict[str, str] = {}
        self._commit_began: float | None = None
        self._commits_failing_since: float | None = None
        self._commit_error = ""

    def table_loaded(self) -> None:
        """The Iceberg table answered and is ready for commits."""
        with self._lock:
            self._table_loaded = True

    def assigned(self, partitions: Iterable[int]) -> None:
        """A partition assignment arrived (possibly empty)."""
        with self._lock:
            self._assignment_seen = True
            self._assigned = tuple(sorted(partitions))
            self._lag = {p: v for p, v in self._lag.items() if p in self._assigned}

    def polled(self) -> None:
        """The consumer just returned from a poll."""
        now = self._clock()
        with self._lock:
            self._last_poll = now

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to a counter."""
        with self._lock:
            self._counters[name] += n

    def committed(
        self,
        rows: int,
        skipped_rows: int,
        conflicts: int,
        *,
        waited_s: float = 0.0,
        breakdown: CommitBreakdown | None = None,
    ) -> None:
        """A batch is in the table (or was found to be there already).

        `waited_s` is how long its first record waited for the commit to start, `breakdown`
        where the commit's time went: both feed the document's `commit_timing_ms`.
        """
        now = self._clock()
        with self._lock:
            if breakdown is not None:
                self._timings.append((waited_s * 1000, breakdown))
            self._last_commit = now
            self._commit_began = None
            self._commits_failing_since = None
            self._commit_error = ""
            self._counters["commits"] += 1
            self._counters["written"] += rows
            self._counters["skipped_rows"] += skipped_rows
            self._counters["commit_conflicts"] += conflicts

    def kafka_heard(self, *, answered: bool, brokers: Mapping[str, str]) -> None:
        """Librdkafka's statistics arrived; `answered`: some broker responded since the last."""
        now = self._clock()
        with self._lock:
            if self._kafka_watched_since is None:
                self._kafka_watched_since = now
            if answered:
                self._kafka_answered = now
            self._brokers = dict(brokers)

    def kafka_lost_for(self) -> float | None:
        """Seconds no broker has answered while none is known at all; None if one is known.

        A broker the client knows may answer again; with none known, librdkafka has to
        bootstrap again by itself, which it may not do (see ConsumerConfig.kafka_lost_s).
        """
        now = self._clock()
        with self._lock:
            if self._kafka_watched_since is None or self._brokers:
                return None
            return now - (self._kafka_answered or self._kafka_watched_since)

    def commit_started(self) -> None:
        """An Iceberg commit began (on the worker thread)."""
        now = self._clock()
        with self._lock:
            self._commit_began = now

    def commit_failed(self, message: str) -> None:
        """The Iceberg commit failed; its records will be read again."""
        now = self._clock()
        with self._lock:
            self._commit_began = None
            if self._commits_failing_since is None:
                self._commits_failing_since = now
            self._commit_error = _cut(message)
            self._last_error = (now, message)

    def group_committed(self) -> None:
        """Kafka acknowledged a commit of the group's offsets."""
        now = self._clock()
        with self._lock:
            self._last_group_commit = now

    def uncommitted_since(self, since: float | None) -> None:
        """Monotonic time of the oldest consumed record not yet committed (None: none pending)."""
        with self._lock:
            self._uncommitted_since = since

    def registry_failed(self, message: str) -> None:
        """The registry could not answer; records wait for it."""
        now = self._clock()
        with self._lock:
            if self._registry_down_since is None:
                self._registry_down_since = now
            self._registry_error = _cut(message)
            self._last_error = (now, message)

    def registry_ok(self) -> None:
        """The registry answered again."""
        with self._lock:
            self._registry_down_since = None
            self._registry_error = ""

    def error(self, message: str) -> None:
        """Remember the latest error, for the health document."""
        now = self._clock()
        with self._lock:
            self._last_error = (now, message)

    def set_lag(self, lag: Mapping[int, int | None]) -> None:
        """Messages behind the high watermark, per assigned partition (None: unknown)."""
        with self._lock:
            self._lag = dict(lag)

    def stopping(self) -> None:
        """Shutdown began: health turns unhealthy so no one routes work here."""
        with self._lock:
            self._stopping = True

    def reasons(self) -> list[str]:
        """Why the writer is unhealthy; empty when healthy."""
        with self._lock:
            return self._reasons(self._clock())

    def _reasons(self, now: float) -> list[str]:
        limits = self._limits
        reasons = []
        if self._stopping:
            reasons.append("shutting down")
        if not self._table_loaded:
            reasons.append("Iceberg table not loaded yet")
        if not self._assignment_seen:
            reasons.append("waiting for the first partition assignment")
        elif not self._assigned:
            reasons.append("no partitions assigned")
        if self._last_poll is None:
            reasons.append("has not polled Kafka yet")
        elif now - self._last_poll > limits.max_poll_age_s:
            reasons.append(
                f"last Kafka poll {now - self._last_poll:.1f} s ago "
                f"(limit {limits.max_poll_age_s:g} s)"
            )
        if self._kafka_watched_since is not None:
            silent = now - (self._kafka_answered or self._kafka_watched_since)
            if silent > limits.max_kafka_silence_s:
                brokers = ", ".join(f"{n} {s}" for n, s in sorted(self._brokers.items()))
                reasons.append(
                    f"Kafka has not answered for {silent:.1f} s "
                    f"(limit {limits.max_kafka_silence_s:g} s; brokers: {brokers or 'none known'})"
                )
        if self._commits_failing_since is not None:
            reasons.append(
                f"Iceberg commits failing for {now - self._commits_failing_since:.1f} s: "
                f"{self._commit_error}"
            )
        if self._commit_began is not None and now - self._commit_began > limits.max_commit_s:
            reasons.append(
                f"an Iceberg commit has been running for {now - self._commit_began:.1f} s "
                f"(limit {limits.max_commit_s:g} s)"
            )
        if self._uncommitted_since is not None:
            waiting = now - self._uncommitted_since
            if waiting > limits.max_uncommitted_s:
                reasons.append(
                    f"records consumed {waiting:.1f} s ago are still uncommitted "
                    f"(limit {limits.max_uncommitted_s:g} s)"
                )
        if self._registry_down_since is not None:
            reasons.append(
                f"schema registry failing for {now - self._registry_down_since:.1f} s: "
                f"{self._registry_error}"
            )
        return reasons

    def document(self) -> dict[str, Any]:
        """The health JSON: verdict, reasons, counters, lag and ages (seconds)."""
        with self._lock:
            now = self._clock()
            reasons = self._reasons(now)
            last_error = None
            if self._last_error is not None:
                at, message = self._last_error
                last_error = {"message": message, "age_s": round(now - at, 3)}
            return {
                "healthy": not reasons,
                "reasons": reasons,
                **self._counters,
                "assigned_partitions": list(self._assigned),
                "lag": {str(p): v for p, v in sorted(self._lag.items())},
                "table_loaded": self._table_loaded,
                "last_poll_age_s": _age(now, self._last_poll),
                "last_commit_age_s": _age(now, self._last_commit),
                "last_group_commit_age_s": _age(now, self._last_group_commit),
                "kafka_answer_age_s": _age(now, self._kafka_answered),
                "running_commit_age_s": _age(now, self._commit_began),
                "uncommitted_age_s": _age(now, self._uncommitted_since),
                "last_error": last_error,
                "uptime_s": round(now - self._started, 3),
                "commit_timing_ms": self._timing_summary(),
            }

    def _timing_summary(self) -> dict[str, Any]:
        """p50/p95/max per phase over the latest commits: where freshness goes."""
        if not self._timings:
            return {"commits": 0}
        waited = [w for w, _ in self._timings]
        totals = [b.total_ms for _, b in self._timings]
        phases = {
            name: _spread([b.phases_ms.get(name, 0.0) for _, b in self._timings]) for name in PHASES
        }
        return {
            "commits": len(self._timings),
            "waited": _spread(waited),
            "total": _spread(totals),
            **phases,
        }


class _HealthHandler(BaseHTTPRequestHandler):
    state: ClassVar[HealthState]

    def do_GET(self) -> None:
        """`/health` (and `/`): the JSON document; `/ready`: one line. 200 if healthy else 503."""
        path = self.path.split("?", 1)[0]
        if path in ("/health", "/"):
            document = self.state.document()
            healthy, body, kind = document["healthy"], json.dumps(document), "application/json"
        elif path == "/ready":
            reasons = self.state.reasons()
            healthy, kind = not reasons, "text/plain; charset=utf-8"
            body = "healthy\n" if healthy else "unhealthy: " + "; ".join(reasons) + "\n"
        else:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self._answer(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, kind, body)

    def _answer(self, status: HTTPStatus, kind: str, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every second would drown the log: debug only."""
        log.debug("health: " + format, *args)


class HealthServer:
    """`GET /health` on a daemon thread, until `close`."""

    def __init__(self, state: HealthState, host: str, port: int) -> None:
        handler = type("HealthHandler", (_HealthHandler,), {"state": state})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        # serve_forever checks for shutdown every poll_interval: 0.5 s by default, which
        # every stop of the consumer waited out.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="k2-health",
            daemon=True,
        )

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
