"""Where one Iceberg commit spends its time: data files, manifests, the catalog, the rest.

A commit is most of a trade's freshness, and pyiceberg's `append` does everything inside one
call. To see the parts without reaching into pyiceberg's private code, the consumer's catalog
hands pyiceberg a FileIO (the documented `py-io-impl` property) whose files report when they
were opened, written and closed, and a catalog whose `commit_table` reports its own span.
`CommitClock` collects those spans for the one commit in flight and turns them into phases:

- `arrow`: the batch's rows to one Arrow table;
- `data_files`: Parquet data files encoded and uploaded (from open to the size check that
  follows the upload). Encode and upload are not told apart: that needs a Python object in
  pyarrow's write path, which then calls back into Python for every page it writes, and under
  contention for the interpreter lock that made writing ~9x slower (measured: 40 -> 370 ms
  for four files). An observer must not cost what it measures;
- `manifests`: manifest and manifest-list files read and written (pyiceberg writes those
  from Python anyway, so their streams are timed directly);
- `catalog`: the REST catalog's commit (its own metadata write included);
- `other`: the rest of `append` (pyiceberg's own work, metadata copies among it).

Spans of one kind that overlap (pyiceberg writes a commit's data files in parallel) count
once, as wall time, so the phases add up to the commit's duration.

Every reported span, and every `progressed` call (the message-id index's reads), is also a
sign of life: `idle_s` says how long the commit in flight has gone without one. The writer's
K2_COMMIT_DEADLINE_S times that silence, not the commit's length, so a commit that is slow
but moving (a large hour of message ids read after a restart on a slow machine) is not given
up on, and one stuck on a socket nobody answers still is.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, cast

from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.io import OutputStream
from pyiceberg.io.pyarrow import BUFFER_SIZE, ONE_MEGABYTE, PyArrowFile, PyArrowFileIO
from pyiceberg.table import CommitTableResponse, Table
from pyiceberg.table.update import TableRequirement, TableUpdate

PHASES: Final = ("arrow", "data_files", "manifests", "catalog", "other")


@dataclass(frozen=True, slots=True)
class CommitBreakdown:
    """Milliseconds per phase of one commit (see the module docstring), and the total."""

    phases_ms: dict[str, float]
    total_ms: float

    def describe(self) -> str:
        """'arrow 3, data_files 66, manifests 40, ... ms' for the commit log line."""
        return ", ".join(f"{name} {self.phases_ms.get(name, 0.0):.0f}" for name in PHASES) + " ms"


def _union_s(spans: list[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping [start, end] spans."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end <= reach:
            continue
        covered += end - max(start, reach)
        reach = end
    return covered


class CommitClock:
    """Collects the spans reported during the one commit in flight (thread-safe).

    Spans reported while no commit is being measured (the API's reads, start-up) are dropped.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._spans: dict[str, list[tuple[float, float]]] | None = None
        self._alive_at: float | None = None
        """When the commit being measured last showed progress (None: none measured)."""

    def span(self, kind: str, start: float, end: float) -> None:
        """Record that `kind` work ran from `start` to `end` (clock seconds): progress too."""
        with self._lock:
            if self._spans is not None:
                self._spans.setdefault(kind, []).append((start, end))
                self._alive_at = self.clock()

    def progressed(self) -> None:
        """Note that the commit being measured moved on (work that is not a phase of its own)."""
        with self._lock:
            if self._spans is not None:
                self._alive_at = self.clock()

    def idle_s(self) -> float | None:
        """Seconds since the commit being measured began or last progressed; None if none is."""
        with self._lock:
            alive_at = self._alive_at
        return None if alive_at is None else max(0.0, self.clock() - alive_at)

    @contextmanager
    def measure(self) -> Iterator[Callable[[], CommitBreakdown]]:
        """Measure the block; the yielded function gives the breakdown once the block ended."""
        began = self.clock()
        with self._lock:
            self._spans = {}
            self._alive_at = began
        result: list[CommitBreakdown] = []
        try:
            yield lambda: result[0]
        finally:
            ended = self.clock()
            with self._lock:
                spans, self._spans = self._spans or {}, None
                self._alive_at = None
            phases = {kind: _union_s(found) * 1000 for kind, found in spans.items()}
            everything = [span for found in spans.values() for span in found]
            phases["other"] = max(0.0, (ended - began - _union_s(everything)) * 1000)
            result.append(
                CommitBreakdown(
                    {name: round(ms, 1) for name, ms in phases.items()},
                    round((ended - began) * 1000, 1),
                )
            )


CLOCK: Final = CommitClock()
"""The process's clock: pyiceberg builds the FileIO from a class name, so it cannot be passed."""


class _TimedOutputStream:
    """A metadata write stream that reports its span when closed (see the module docstring)."""

    def __init__(self, stream: OutputStream, opened: float) -> None:
        self._stream = stream
        self._opened = opened
        self.closed = False

    def write(self, data: bytes) -> int:
        """Write through."""
        return self._stream.write(data)

    def flush(self) -> None:
        """Nothing buffers here; the stream below flushes on close."""

    def tell(self) -> int:
        """Position, for writers that ask."""
        return int(self._stream.tell())

    def writable(self) -> bool:
        """A write stream."""
        return True

    def seekable(self) -> bool:
        """Object storage streams cannot seek."""
        return False

    def close(self) -> None:
        """Close the stream below (uploading it) and report the span."""
        if self.closed:
            return
        self.closed = True
        try:
            self._stream.close()
        finally:
            CLOCK.span("manifests", self._opened, CLOCK.clock())

    def __enter__(self) -> _TimedOutputStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _kind(location: str) -> str:
    return "data" if location.endswith(".parquet") else "metadata"


class TimedFile(PyArrowFile):
    """A PyArrowFile that reports its spans to CLOCK."""

    _opened: float | None = None

    def create(self, overwrite: bool = False) -> OutputStream:
        """Open for writing: a data file's native stream as is, a metadata file's timed."""
        opened = CLOCK.clock()
        stream = super().create(overwrite=overwrite)
        if _kind(self.location) == "data":
            self._opened = opened  # the span ends with the size check after the upload
            return stream
        # pyiceberg's Avro writer writes to any object with write() and close().
        return cast(OutputStream, _TimedOutputStream(stream, opened))

    def __len__(self) -> int:
        """Size: for a data file, the HEAD that ends its span (pyiceberg asks after closing)."""
        began = self._opened if self._opened is not None else CLOCK.clock()
        try:
            return super().__len__()
        finally:
            kind = "data_files" if _kind(self.location) == "data" else "manifests"
            CLOCK.span(kind, began, CLOCK.clock())

    def open(self, seekable: bool = True) -> Any:
        """Open for reading (existing manifest lists and manifests): counted as manifests."""
        began = CLOCK.clock()
        try:
            return super().open(seekable=seekable)
        finally:
            CLOCK.span("manifests", began, CLOCK.clock())


class TimedFileIO(PyArrowFileIO):
    """PyArrowFileIO handing out TimedFile; named by the catalog's `py-io-impl` property."""

    def new_input(self, location: str) -> PyArrowFile:
        """As PyArrowFileIO, timed."""
        return self._file(location)

    def new_output(self, location: str) -> PyArrowFile:
        """As PyArrowFileIO, timed."""
        return self._file(location)

    def _file(self, location: str) -> TimedFile:
        scheme, netloc, path = self.parse_location(location, self.properties)
        return TimedFile(
            fs=self.fs_by_scheme(scheme, netloc),
            location=location,
            path=path,
            buffer_size=int(self.properties.get(BUFFER_SIZE, ONE_MEGABYTE)),
        )


class TimedRestCatalog(RestCatalog):
    """RestCatalog whose table commits report their span to CLOCK."""

    def commit_table(
        self,
        table: Table,
        requirements: tuple[TableRequirement, ...],
        updates: tuple[TableUpdate, ...],
    ) -> CommitTableResponse:
        """As RestCatalog.commit_table, timed."""
        began = CLOCK.clock()
        try:
            response: CommitTableResponse = super().commit_table(table, requirements, updates)
            return response
        finally:
            CLOCK.span("catalog", began, CLOCK.clock())
