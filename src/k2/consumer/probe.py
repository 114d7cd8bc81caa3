"""`python -m k2.consumer.probe`: the container healthcheck, exit 0 only if the writer is healthy.

Asks the writer's own health endpoint (port from `--port`, else K2_HEALTH_PORT, else 8081)
and prints one line: `healthy` or `unhealthy: <reasons>`. An endpoint that does not answer is
unhealthy too, so a hung or crashed writer never passes. It imports nothing of K2 beyond this
module, so a probe every second stays cheap.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
from typing import Final

DEFAULT_HEALTH_PORT: Final = 8081
"""The writer's health port unless K2_HEALTH_PORT says otherwise (k2.consumer.config uses it)."""
DEFAULT_TIMEOUT_S: Final = 3.0


def probe(host: str, port: int, timeout: float = DEFAULT_TIMEOUT_S) -> tuple[bool, str]:
    """(healthy, one-line verdict) from `GET http://host:port/health`."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return False, f"unhealthy: health endpoint {host}:{port} unreachable: {exc}"
    finally:
        connection.close()
    try:
        document = json.loads(body)
        healthy = response.status == 200 and document["healthy"] is True
        reasons = [str(reason) for reason in document.get("reasons", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return False, f"unhealthy: HTTP {response.status} with no health document"
    if healthy:
        return True, "healthy"
    return False, "unhealthy: " + ("; ".join(reasons) or f"HTTP {response.status}")


def main(argv: list[str] | None = None) -> int:
    """Probe once, print the verdict, exit 0 (healthy) or 1."""
    parser = argparse.ArgumentParser(prog="python -m k2.consumer.probe", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    args = parser.parse_args(argv)
    port = args.port
    if port is None:
        text = os.environ.get("K2_HEALTH_PORT", "").strip()
        try:
            port = int(text) if text else DEFAULT_HEALTH_PORT
        except ValueError:
            print(f"unhealthy: K2_HEALTH_PORT={text!r} is not a port", file=sys.stderr)
            return 1
    healthy, verdict = probe(args.host, port, args.timeout)
    print(verdict)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
