"""External targets: a deployment that is already running, described by a TOML file.

With `--e2e-target FILE` the suite starts, stops and removes nothing: the tests that are safe
against a deployment (marked `operational`) talk to the addresses the file names, and every
test that needs control of the stack's containers is deselected (see `plugin`). The file::

    [services.kafka]
    ports = { 9094 = "10.0.0.5:29092" }        # container port = "host:port" it is reached on
    [services.k2-query-api]
    ports = { 8000 = "10.0.0.6:8000" }
    env = { K2_API_KEY = "${K2_API_KEY}" }     # values tests read; ${VAR}: from the environment

`${VAR}` keeps secrets out of the file: the value comes from this process's environment, and
an unset variable stops the run with one line. `describe` writes such a file for a compose
project that is running now (a stack started by hand).
"""

from __future__ import annotations

import json
import socket
import string
import tomllib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import pytest

CONNECT_TIMEOUT_S: Final = 2.0
"""How long a reachability probe waits for one TCP connection (a healthy one takes < 1 ms)."""


# pytest prints a UsageError as one line and exits: what an unusable target file needs.
TargetError = pytest.UsageError


class Deployment(Protocol):
    """What tests read of a running stack, whether this run started it or not."""

    def addresses(self) -> dict[tuple[str, int], str]:
        """(service, container port) -> 'host:port' a client on this machine connects to."""
        ...

    def service_env(self, service: str) -> dict[str, str]:
        """Values of a service's environment the tests need (credentials, region)."""
        ...


@dataclass(frozen=True)
class Target:
    """A running deployment: where each service's ports are reached, and the values tests need.

    Nothing in it belongs to this run, so nothing here starts, stops or inspects containers.
    """

    path: Path
    ports: Mapping[tuple[str, int], str]
    env: Mapping[str, Mapping[str, str]]

    @classmethod
    def load(cls, path: Path, environ: Mapping[str, str]) -> Target:
        """Read and check the file; `${VAR}` in a value is taken from `environ`."""
        try:
            document = tomllib.loads(path.read_text())
        except OSError as exc:
            raise TargetError(f"--e2e-target {path}: cannot read it ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise TargetError(f"--e2e-target {path}: not TOML ({exc})") from None
        services = document.get("services")
        if not isinstance(services, dict) or not services:
            raise TargetError(
                f"--e2e-target {path}: no [services.<name>] table; each service needs "
                '`ports = { <container port> = "host:port" }`'
            )
        ports: dict[tuple[str, int], str] = {}
        env: dict[str, dict[str, str]] = {}
        for service, spec in services.items():
            where = f"--e2e-target {path}: [services.{service}]"
            if not isinstance(spec, dict) or not set(spec) <= {"ports", "env"}:
                raise TargetError(f"{where} may hold only `ports` and `env` tables")
            for port, address in (spec.get("ports") or {}).items():
                ports[(service, _port(where, port))] = _address(
                    where, _expand(where, str(address), environ)
                )
            env[service] = {
                str(name): _expand(where, str(value), environ)
                for name, value in (spec.get("env") or {}).items()
            }
        return cls(path, ports, env)

    def addresses(self) -> dict[tuple[str, int], str]:
        """(service, container port) -> 'host:port', as the file names them."""
        return dict(self.ports)

    def service_env(self, service: str) -> dict[str, str]:
        """The `env` table of a service (empty if the file gives none)."""
        return dict(self.env.get(service, {}))

    def unreachable(self, timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
        """One line per address that refuses a TCP connection now (empty: all answer).

        The addresses are tried at once: against a host that drops packets each attempt
        lasts its whole timeout, and one after another they would hold a wait that long
        times the number of services.
        """
        addresses = sorted(self.ports.items())
        if not addresses:
            return []
        with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
            found = pool.map(lambda item: _refusal(item[0], item[1], timeout_s), addresses)
        return [line for line in found if line]

    def raise_if_unreachable(self) -> None:
        """The guard of a wait against a target: raise when a service stops answering.

        A connection per address, about once a second during a wait: negligible load on a
        deployment, and a dead service fails the wait in a second instead of at its deadline.
        """
        from e2e_stack.waiting import StackUnhealthy

        down = self.unreachable()
        if down:
            service = down[0].split(" ", 1)[0]
            raise StackUnhealthy(
                service,
                "its address refuses connections",
                "\n".join(down) + f"\n(target {self.path})",
            )


def _refusal(key: tuple[str, int], address: str, timeout_s: float) -> str:
    """Why `address` (of service port `key`) refuses a TCP connection; "" if it accepts."""
    service, port = key
    host, _, number = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(number)), timeout_s):
            return ""
    except OSError as exc:
        return f"{service} port {port} at {address}: {exc.strerror or exc}"


def _port(where: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise TargetError(f"{where}: ports key {value!r} is not a container port number")
    return port


def _address(where: str, value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"{where}: {value!r} is not host:port (e.g. 10.0.0.5:29092)")
    return value


def _expand(where: str, value: str, environ: Mapping[str, str]) -> str:
    try:
        return string.Template(value).substitute(environ)
    except KeyError as exc:
        raise TargetError(
            f"{where}: {value!r} needs the environment variable {exc.args[0]}, which is not set"
        ) from None
    except ValueError as exc:
        raise TargetError(f"{where}: {value!r}: {exc} (write $$ for a literal $)") from None


def describe(project: str, env: Iterable[tuple[str, str]] = ()) -> str:
    """A target file for compose project `project`, running now on the current engine.

    Args:
        project: the compose project name (`docker compose ls` lists them).
        env: (service, variable) pairs whose values the file should carry, read from the
            running containers (a secret is better given as `${VAR}` by hand afterwards).
    """
    from python_on_whales import DockerClient

    docker = DockerClient()
    containers = docker.container.list(filters=[("label", f"com.docker.compose.project={project}")])
    if not containers:
        raise TargetError(f"no running container of compose project {project!r} on this engine")
    wanted: dict[str, set[str]] = {}
    for service, variable in env:
        wanted.setdefault(service, set()).add(variable)
    lines = [f"# A running deployment: compose project {project}. Use: pytest --e2e-target=FILE"]
    for container in sorted(containers, key=lambda c: _service(c.config.labels)):
        service = _service(container.config.labels)
        ports = {
            int(spec.split("/")[0]): f"{_reachable(binding['HostIp'])}:{binding['HostPort']}"
            for spec, bindings in (container.network_settings.ports or {}).items()
            for binding in (bindings or [])[:1]
        }
        values = dict(item.split("=", 1) for item in container.config.env or [] if "=" in item)
        chosen = {name: values[name] for name in sorted(wanted.get(service, ())) if name in values}
        if not ports and not chosen:
            continue
        lines.append(f"\n[services.{service}]")
        if ports:
            lines.append(f"ports = {_inline({str(k): v for k, v in sorted(ports.items())})}")
        if chosen:
            lines.append(f"env = {_inline(chosen)}")
    return "\n".join(lines) + "\n"


def _service(labels: Mapping[str, Any] | None) -> str:
    return str((labels or {}).get("com.docker.compose.service", "?"))


def _reachable(host_ip: str) -> str:
    # A port published on every address is reached from this machine on loopback.
    return "127.0.0.1" if host_ip in ("", "0.0.0.0") else host_ip  # noqa: S104


def _inline(table: Mapping[str, str]) -> str:
    # TOML basic strings share JSON's escapes for what can occur here.
    # A `$` of a copied value is literal, not a reference to the environment.
    pairs = (f"{_key(k)} = {json.dumps(v.replace('$', '$$'))}" for k, v in table.items())
    return "{ " + ", ".join(pairs) + " }"


def _key(name: str) -> str:
    return name if name.replace("_", "").replace("-", "").isalnum() else json.dumps(name)


def main(argv: list[str] | None = None) -> int:
    """`python -m e2e_stack.target PROJECT [--env SERVICE:VARIABLE ...]`: print a target file."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m e2e_stack.target",
        description="Print a --e2e-target file for a compose project running on this engine.",
    )
    parser.add_argument("project", help="compose project name (see `docker compose ls`)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="SERVICE:VARIABLE",
        help="copy this variable of the service's container into the file (repeatable)",
    )
    args = parser.parse_args(argv)
    pairs = []
    for entry in args.env:
        service, sep, variable = entry.partition(":")
        if not sep or not service or not variable:
            parser.error(f"--env {entry!r} is not SERVICE:VARIABLE")
        pairs.append((service, variable))
    try:
        sys.stdout.write(describe(args.project, pairs))
    except TargetError as exc:
        print(f"e2e_stack.target: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
