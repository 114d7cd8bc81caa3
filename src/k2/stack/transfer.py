"""Copy images from one Docker engine to another: `k2-stack images --from SOURCE`.

A second engine (a remote CI host, `scripts/second-engine`) needs the same images, and
building them again there costs minutes of CPU and every artifact fetched twice. `docker
save | docker load` keeps image ids, so the copies carry the same content tags and the
target's plan sees them up to date.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping

from k2.stack._proc import run, tail
from k2.stack.errors import StackError


def engine_env(endpoint: str) -> dict[str, str]:
    """This process's environment, pointed at the engine at `endpoint` (not a context)."""
    env = {key: value for key, value in os.environ.items() if key != "DOCKER_CONTEXT"}
    env["DOCKER_HOST"] = endpoint
    return env


def present(refs: Iterable[str], env: Mapping[str, str] | None = None) -> set[str]:
    """Which of `refs` the engine (this process's, or the one `env` names) holds."""
    wanted = sorted(set(refs))
    if not wanted:
        return set()
    proc = run(
        ["docker", "image", "inspect", "--format", "{{json .RepoTags}}", *wanted],
        timeout=60,
        env=env,
    )
    tags: set[str] = set()
    for line in proc.stdout.splitlines():
        tags.update(tag for tag in line.strip().strip("[]").replace('"', "").split(",") if tag)
    return tags & set(wanted)


def copy(refs: Iterable[str], source: str) -> None:
    """Stream `refs` from the engine at `source` into this process's engine, in one pass.

    One `docker save` of them all, so layers they share travel once.
    """
    wanted = sorted(set(refs))
    if not wanted:
        return
    answers = run(["docker", "version", "--format", "{{.Server.Version}}"], env=engine_env(source))
    if answers.returncode != 0:
        raise StackError(
            f"no Docker engine answers at {source} ({tail(answers.stderr, 1)})",
            "give --from the DOCKER_HOST of the engine that has the images",
        )
    missing = sorted(set(wanted) - present(wanted, engine_env(source)))
    if missing:
        raise StackError(
            f"{', '.join(missing)} not on {source}",
            f"build them there first: DOCKER_HOST={source} k2-stack images",
        )
    save = subprocess.Popen(
        ["docker", "save", *wanted],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=engine_env(source),
    )
    assert save.stdout is not None
    load = subprocess.run(
        ["docker", "load", "--quiet"], stdin=save.stdout, capture_output=True, check=False
    )
    save.stdout.close()
    save_err = save.stderr.read().decode(errors="replace") if save.stderr else ""
    save_code = save.wait()
    if save_code != 0 or load.returncode != 0:
        detail = save_err.strip() or load.stderr.decode(errors="replace").strip()
        raise StackError(
            f"copying {len(wanted)} image(s) from {source} failed: {tail(detail, 3)}",
            "check both engines answer and have disk space",
        )
