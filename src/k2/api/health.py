"""Readiness for /health: the truth about the catalog and the table, at a bounded cost.

A probe asks the repository to prove it can answer (load the table through the catalog). A
success is reused for `ttl` seconds, so a healthcheck every second plus a few curious clients
cost about one catalog call per second; a failure is never reused, so recovery shows at the
next probe. Concurrent callers share one probe in flight rather than piling up more calls on
a catalog that is already slow, and each probe is cut off after `timeout` seconds, below the
container healthcheck's own timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio

from k2.api.repository import RepositoryUnavailableError, TradeRepository

log = logging.getLogger(__name__)

DEFAULT_TTL: Final = 1.0
DEFAULT_TIMEOUT: Final = 2.0
_MAX_REASON: Final = 300


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One probe's verdict; `finished` is on the probe's monotonic clock."""

    ok: bool
    reason: str | None
    snapshot_id: int | None
    finished: float


class HealthProbe:
    """Single-flight, positively cached readiness checks of one repository."""

    def __init__(
        self,
        repository: TradeRepository,
        *,
        ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repository = repository
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = anyio.Lock()
        self._last: HealthResult | None = None

    async def check(self) -> HealthResult:
        """A verdict no older than `ttl` if positive, else one made after this call began."""
        asked = self._clock()
        last = self._last
        if last is not None and last.ok and asked - last.finished < self._ttl:
            return last
        async with self._lock:
            last = self._last
            # A probe that finished while we waited for the lock is news enough.
            if last is not None and (
                last.finished >= asked or (last.ok and self._clock() - last.finished < self._ttl)
            ):
                return last
            self._last = await self._probe()
            return self._last

    async def _probe(self) -> HealthResult:
        reason: str
        try:
            with anyio.fail_after(self._timeout):
                readiness = await self._repository.readiness()
        except TimeoutError:
            step = self._repository.readiness_step()
            waiting = f" (waiting for {step})" if step else ""
            reason = f"trade store did not answer within {self._timeout:g} s{waiting}"
        except RepositoryUnavailableError as exc:
            reason = str(exc)
        except Exception as exc:  # a health check reports every failure, it never raises
            reason = f"{type(exc).__name__}: {exc}"
        else:
            return HealthResult(True, None, readiness.snapshot_id, self._clock())
        log.warning("not ready: %s", reason)
        return HealthResult(False, reason[:_MAX_REASON], None, self._clock())
