"""Time a cold build: no k2 image, no base image, no host artifact caches; results committed.

Issue 13's measure of what a newcomer's first `tox -e e2e` pays before its first test:
`k2-stack images` (base image by debootstrap, every fetch, every build) with nothing to
reuse. The engine must be running already (its install is not part of this figure).

Destructive, so it asks for `--yes`: it removes every k2 image and the base image, and moves
the host caches a build fills (Maven's local repository, Go's module and build caches, pip's
cache; their places asked of the tools themselves) aside for the run, then deletes the
copies moved aside (the run has filled the caches again with the same artifacts).

Every output line of the build is timestamped, so the results also hold the longest silent
stretch (goal: none over 15 s) and when each image was built.

    python -m benchmarks.cold_build_bench --yes
"""

from __future__ import annotations

import argparse
import itertools
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import describe, write_results
from benchmarks.stack_bench import k2_images
from k2.stack.baseimage import BASE_IMAGE

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "cold-build.json"
GOALS = {"cold_build_s": 480, "longest_silence_s": 15}
_BUILT = re.compile(r"^\s+(\S+)\s+built in ([\d.]+)s")


def _tool_output(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def host_caches() -> dict[str, Path]:
    """Where this machine's tools keep what a build fetches (asked of the tools)."""
    caches = {"maven": Path.home() / ".m2" / "repository"}
    settings = Path.home() / ".m2" / "settings.xml"
    if settings.exists():
        found = re.search(r"<localRepository>([^<]+)</localRepository>", settings.read_text())
        if found:
            caches["maven"] = Path(found.group(1).strip())
    for name, variable in (("go_modules", "GOMODCACHE"), ("go_build", "GOCACHE")):
        if value := _tool_output(["go", "env", variable]):
            caches[name] = Path(value)
    if value := _tool_output([sys.executable, "-m", "pip", "cache", "dir"]):
        caches["pip"] = Path(value)
    return caches


def _size_mb(path: Path) -> float:
    du = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=False)
    return float(du.stdout.split()[0]) if du.returncode == 0 and du.stdout else 0.0


def _empty_engine() -> list[str]:
    """Remove every k2 image and the base image; what was removed."""
    refs = [*k2_images(), BASE_IMAGE]
    subprocess.run(["docker", "image", "rm", "-f", *refs], capture_output=True, check=False)
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True, check=False)
    left = _tool_output(["docker", "image", "ls", "-q", BASE_IMAGE])
    if left:
        sys.exit(f"{BASE_IMAGE} is still there (used by a container?): stop it and retry")
    return refs


def timed_build() -> dict[str, Any]:
    """Run `k2-stack images`, stamping each line; total, per image, longest silence."""
    began = time.monotonic()
    stamps: list[tuple[float, str]] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "k2.stack", "images"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        at = time.monotonic() - began
        stamps.append((at, line.rstrip()))
        print(f"{at:7.1f} {line.rstrip()}", flush=True)
    code = proc.wait()
    total = time.monotonic() - began
    if code != 0:
        sys.exit(f"the cold build failed (exit {code}); see the lines above")
    times = [0.0, *(at for at, _ in stamps), total]
    gaps = [
        (later - earlier, index) for index, (earlier, later) in enumerate(itertools.pairwise(times))
    ]
    longest, where = max(gaps)
    before = stamps[where - 1][1] if where > 0 else "(start)"
    built = {m.group(1): float(m.group(2)) for _, line in stamps if (m := _BUILT.match(line))}
    return {
        "seconds": round(total, 1),
        "longest_silence_s": round(longest, 1),
        "longest_silence_after": before.strip()[:120],
        "images_built_s": built,
        "lines": len(stamps),
    }


def main() -> None:
    """Empty the engine and the caches, build, restore nothing but the filled caches."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--yes", action="store_true", help="really delete images and caches")
    args = parser.parse_args()
    if not args.yes:
        sys.exit("this removes every k2 image, the base image and the host caches: add --yes")
    results: dict[str, Any] = {"machine": describe(), "goals": GOALS}
    caches = host_caches()
    results["host_caches_moved_aside_mb"] = {
        name: _size_mb(path) for name, path in caches.items() if path.exists()
    }
    results["removed_images"] = _empty_engine()
    aside = {name: path.with_name(path.name + ".k2-cold-aside") for name, path in caches.items()}
    for name, path in caches.items():
        if path.exists():
            shutil.rmtree(aside[name], ignore_errors=True)
            path.rename(aside[name])
    try:
        results["cold_build"] = timed_build()
    finally:
        for name, path in aside.items():
            if path.exists() and caches[name].exists():
                shutil.rmtree(path, ignore_errors=True)  # the run filled the cache again
            elif path.exists():
                path.rename(caches[name])  # the run failed before using it: put it back
    results["host_caches_after_mb"] = {
        name: _size_mb(path) for name, path in caches.items() if path.exists()
    }
    write_results(RESULTS, results)
    build = results["cold_build"]
    print(
        f"cold build {build['seconds']} s (goal <= {GOALS['cold_build_s']} s); longest silence "
        f"{build['longest_silence_s']} s after: {build['longest_silence_after']}"
    )


if __name__ == "__main__":
    main()
