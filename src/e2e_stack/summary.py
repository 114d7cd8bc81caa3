"""The end-of-run table: how long each service took to be ready and what it cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceRow:
    """One service of one stack in the summary."""

    stack: str
    service: str
    ready_after_s: float | None
    peak_cpu_percent: float | None
    peak_memory_mib: float | None

    def to_json(self) -> dict[str, Any]:
        """Plain dict for workeroutput and the summary file."""
        return asdict(self)


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(rows: list[ServiceRow]) -> list[str]:
    """Aligned text lines, stacks grouped, services in start order (fastest first)."""
    if not rows:
        return []
    header = ("stack", "service", "ready s", "peak cpu %", "peak mem MiB")
    body = [
        (
            row.stack,
            row.service,
            _cell(row.ready_after_s, ".1f"),
            _cell(row.peak_cpu_percent, ".0f"),
            _cell(row.peak_memory_mib, ".0f"),
        )
        for row in sorted(
            rows,
            key=lambda r: (r.stack, r.ready_after_s is None, r.ready_after_s or 0.0, r.service),
        )
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    lines = []
    for line in (header, *body):
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def rows_for(
    stack: str,
    ready_after_s: Mapping[str, float],
    peaks: Mapping[str, tuple[float, float]],
) -> list[ServiceRow]:
    """Join ready times and (cpu, memory) peaks by service."""
    services = sorted(set(ready_after_s) | set(peaks))
    return [
        ServiceRow(
            stack=stack,
            service=service,
            ready_after_s=ready_after_s.get(service),
            peak_cpu_percent=peaks[service][0] if service in peaks else None,
            peak_memory_mib=peaks[service][1] if service in peaks else None,
        )
        for service in services
    ]
