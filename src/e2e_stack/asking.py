"""Ask a service, from this host, the question its own healthcheck asks.

The engine runs a healthcheck once per `interval` (2 s in K2's e2e override, where a shorter
one would cost the starting services CPU): a service that is ready just after a probe is
reported up to one interval late, and `docker compose up --wait` waits that long too. Where
the healthcheck is `curl` of an HTTP URL on the container's own loopback and that port is
published, the same request can be sent from the test host at any moment, for the price of
one loopback connection. The compose file stays the one definition of "ready": only its own
request is sent, and a service whose check is anything else (a CLI tool, a shell line, a port
that is not published) is left to the engine's healthcheck.

Any other healthcheck can still be run sooner by `docker exec` of its own command in the
container (`exec_asks`). That costs what an engine probe costs (an exec, about 70 ms of CPU
here), so it is paced and used only where a waiting start depends on it
(e2e_stack.headstart).
"""

from __future__ import annotations

import http.client
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from e2e_stack.readiness import ContainerState

ASK_TIMEOUT_S: Final = 0.3
"""A service too slow to answer this quickly is left to the engine's own check."""
EXEC_ASK_EVERY_S: Final = 0.5
"""An exec'd check runs at most this often per service (each is an exec, like a probe)."""
EXEC_ASK_TIMEOUT_S: Final = 1.0
"""An exec'd check slower than this counts as not passed; the engine's own check decides."""
_LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost")
_FAIL_FLAGS: Final = ("--fail", "--fail-with-body")
_QUIET_FLAGS: Final = ("--silent", "--show-error")
_VALUED_FLAGS: Final = ("-o", "--output", "-m", "--max-time")

Ask = Callable[[ContainerState], bool]
"""Whether a service answers its healthcheck's request now (given its observed state)."""


@dataclass(frozen=True)
class HttpHealthcheck:
    """A healthcheck that is one HTTP GET of the container's own port, as curl sends it.

    Args:
        port: the container port the URL names.
        path: path and query of the URL.
        fail_on_status: curl's `-f`: an HTTP status of 400 or more fails the check.
    """

    port: int
    path: str
    fail_on_status: bool

    def asks(self, host: str) -> Ask:
        """The check, sent to `host` at the port the engine published for `port`."""

        def ask(state: ContainerState) -> bool:
            published = state.published.get(self.port)
            if state.status != "running" or published is None:
                return False
            connection = http.client.HTTPConnection(host, published, timeout=ASK_TIMEOUT_S)
            try:
                connection.request("GET", self.path)
                status = connection.getresponse().status
            except (OSError, http.client.HTTPException):
                return False
            finally:
                connection.close()
            return status < 400 or not self.fail_on_status

        return ask


def http_healthcheck(test: Sequence[str]) -> HttpHealthcheck | None:
    """The HTTP GET a compose `healthcheck.test` makes, or None if it does anything else.

    Only `["CMD", "curl", <flags>, URL]` with flags that change neither the request nor the
    verdict beyond `-f` (silence, output file, time limit) and a URL on the container's own
    loopback qualifies: anything else could mean more than the status of one GET.
    """
    if len(test) < 3 or test[0] != "CMD" or test[1] != "curl":
        return None
    fail = False
    urls: list[str] = []
    args = iter(test[2:])
    for arg in args:
        if arg in _FAIL_FLAGS:
            fail = True
        elif arg in _VALUED_FLAGS:
            next(args, None)
        elif arg in _QUIET_FLAGS:
            continue
        elif arg.startswith("--"):
            return None
        elif arg.startswith("-"):
            letters = set(arg[1:])
            if not letters <= {"f", "s", "S"}:
                return None
            fail = fail or "f" in letters
        else:
            urls.append(arg)
    if len(urls) != 1:
        return None
    url = urlsplit(urls[0])
    if url.scheme != "http" or url.hostname not in _LOOPBACK_NAMES or url.username:
        return None
    try:
        port = url.port or 80
    except ValueError:
        return None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return HttpHealthcheck(port, path, fail)


def askable(model: Mapping[str, Any], host: str) -> dict[str, Ask]:
    """Per service of a compose model whose healthcheck can be asked over HTTP, its ask.

    Args:
        model: the resolved compose model (`docker compose config`).
        host: the address the engine publishes ports on.
    """
    found: dict[str, Ask] = {}
    for name, spec in (model.get("services") or {}).items():
        check = spec.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not isinstance(test, list):
            continue
        parsed = http_healthcheck(test)
        published = {int(port["target"]) for port in spec.get("ports") or []}
        if parsed is not None and parsed.port in published:
            found[name] = parsed.asks(host)
    return found


CheckIn = Callable[[str, Sequence[str], float], bool]
"""Whether a command exits 0 in a container within a time limit (Engine.check_in)."""


def exec_healthcheck(test: Sequence[str]) -> tuple[str, ...] | None:
    """The command a compose `healthcheck.test` runs in the container, as exec argv."""
    if len(test) >= 2 and test[0] == "CMD":
        return tuple(test[1:])
    if len(test) == 2 and test[0] == "CMD-SHELL":
        return ("/bin/sh", "-c", test[1])  # as the engine runs CMD-SHELL
    return None


@dataclass
class ExecAsk:
    """A service's healthcheck command run now in its container, at most every EXEC_ASK_EVERY_S.

    Args:
        argv: the healthcheck's command.
        check_in: runs it (Engine.check_in).
        clock: monotonic clock (injected by tests).
    """

    argv: tuple[str, ...]
    check_in: CheckIn
    clock: Callable[[], float] = time.monotonic
    _last: float = field(default=-math.inf, init=False)

    def __call__(self, state: ContainerState) -> bool:
        """See class docstring; between paced runs the answer is False."""
        if state.status != "running" or not state.container:
            return False
        now = self.clock()
        if now - self._last < EXEC_ASK_EVERY_S:
            return False
        self._last = now
        return self.check_in(state.container, self.argv, EXEC_ASK_TIMEOUT_S)


def exec_asks(model: Mapping[str, Any], check_in: CheckIn) -> dict[str, Ask]:
    """Per service of a `docker compose config` model with a healthcheck, its exec'd check."""
    found: dict[str, Ask] = {}
    for name, spec in (model.get("services") or {}).items():
        check = spec.get("healthcheck") or {}
        test = check.get("test")
        if check.get("disable") or not isinstance(test, list):
            continue
        argv = exec_healthcheck(test)
        if argv is not None:
            found[name] = ExecAsk(argv, check_in)
    return found
