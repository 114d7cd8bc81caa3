"""The table's latest metadata, loaded through the catalog at most once per interval for everyone.

Loading the table is the dearest part of a request: a REST call whose answer (the whole table
metadata) the catalog reads and serialises and the API parses. Measured on a 2-core machine:
9.5 ms of the API's CPU and 12.5 ms of the catalog's per load, so a client polling 80 times a
second spent most of two cores on loads alone. Requests therefore share one load: a request
finds the metadata loaded within the last `max_age_s` and uses it, or starts the one load that
everybody waiting then uses (single flight). A commit is visible to every request that starts
more than `max_age_s` (plus one load) after it, and the catalog sees at most one load per
`max_age_s`, however many clients ask.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from pyiceberg.table import Table

DEFAULT_MAX_AGE_S: Final = 0.4
"""Staleness a request may see, and how often the follower reloads while clients ask: at
most 2.5 catalog loads a second under any request rate. At 0.15 s the loads alone took about
0.3 core of a 2-core machine (API and catalog together) during a 1,000 msg/s run; with the
stack limited to one core, 0.2 s and 0.4 s gave the same freshness p99 (within run-to-run
noise) and 0.4 s half the loads."""


class SharedTable:
    """The table as last loaded by `load`, reloaded when older than `max_age_s` (thread-safe)."""

    def __init__(
        self,
        load: Callable[[], Table],
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: tuple[Table, float] | None = None
        self.loads = 0
        """Catalog loads made so far (for /health: what clients cost the catalog)."""

    def current(self) -> Table:
        """The table loaded at most `max_age_s` ago (counted from when its load began).

        A failed load raises and leaves the previous metadata in place but expired, so the
        next request tries again rather than serving stale data while the catalog is down.
        """
        latest = self._latest
        if latest is not None and self._clock() - latest[1] < self._max_age_s:
            return latest[0]
        with self._lock:
            latest = self._latest
            if latest is not None and self._clock() - latest[1] < self._max_age_s:
                return latest[0]  # loaded by the request this one waited for
            return self._load_now()

    def reload(self) -> Table:
        """Load now, whatever the age of the last load (a commit is known to have landed)."""
        with self._lock:
            return self._load_now()

    def _load_now(self) -> Table:
        began = self._clock()
        self.loads += 1
        table = self._load()
        self._latest = (table, began)
        return table
