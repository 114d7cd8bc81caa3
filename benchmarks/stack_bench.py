"""Benchmark the stack's build and start-up, and write the results to benchmarks/results/.

Measures, in one run on one machine (these machines are noisy, so figures are only compared
within a run):
- cold image build: `k2-stack images` with no k2 image and no builder cache (host artifact
  caches as found, recorded), only with `--cold` because it deletes the k2 images;
- no-change rebuild: `k2-stack images` when nothing changed (goal <= 10 s);
- per profile (minimal, full) `docker compose ... --profile P up --wait` on a fresh project,
  then `down -v` (goal <= 60 s), and whether `down -v` left anything behind;
- per profile, time to first test through the E2E layer (pytest launch to the first test
  body, fresh stack) against that plain `up --wait`, interleaved run by run (goal ratio
  <= 1.0), with where the layer's time went (pytest start-up, collection, fixtures);
- time to first test with `--e2e-reuse` on a stack that is already up (goal <= 1 s), for a
  plugin test on the minimal profile and, beside it, for a K2 test that feeds trades (full
  profile), whose module imports the Kafka, registry and HTTP clients.

    python -m benchmarks.stack_bench [--cold] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.k2_plugin import plugin_ini

from benchmarks.machine import describe, head_commit, write_results
from e2e_stack import Engine, free_port
from e2e_stack.reuse import reuse_project_name
from e2e_stack.state import project_run_dir
from e2e_stack.sweep import leftovers

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES: list[str] = plugin_ini()["e2e_compose_files"]
PROJECT_PREFIX: str = plugin_ini()["e2e_project_prefix"]
RESULTS = ROOT / "benchmarks" / "results" / "stack.json"
GOALS = {
    "no_change_rebuild_s": 10.0,
    "minimal_up_wait_s": 60.0,
    "layer_to_plain_ratio": 1.0,
    "reuse_time_to_first_test_s": 1.0,
}
PROFILES = ("minimal", "full")
FIXTURES_SHOWN = 6
"""How many of the slowest fixtures each run records."""
FIRST_TEST = (
    "tests/e2e/test_docker_stack.py::test_minimal_profile_selects_exactly_the_infrastructure"
)
FEEDING_TEST = (
    "tests/e2e/test_complete_pipeline.py::"
    "test_time_range_and_limit_return_exactly_the_expected_slice_newest_first"
)
"""A K2 test that feeds trades and reads the API (full profile): its module imports the Kafka,
registry and HTTP clients, which FIRST_TEST's does not, so reuse is timed on both."""


def _timed(args: list[str], **kwargs: Any) -> float:
    started = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False, **kwargs)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"benchmark step failed: {' '.join(args)}\n{proc.stdout}\n{proc.stderr}")
    return round(elapsed, 2)


def k2_images() -> list[str]:
    """Every image the k2 builder made (labelled org.k2.service), as repository:tag."""
    out = subprocess.run(
        [
            "docker",
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            "label=org.k2.service",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def _host_caches() -> dict[str, str]:
    """Sizes of the host caches a cold build may reuse, so 'cold' is stated honestly."""
    sizes = {}
    for name, path in {
        "maven": Path.home() / ".m2" / "repository",
        "go_modules": Path.home() / "go" / "pkg" / "mod",
        "go_build": Path.home() / ".cache" / "go-build",
    }.items():
        du = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True, check=False)
        sizes[name] = du.stdout.split()[0] if du.returncode == 0 else "absent"
    return sizes


def cold_build() -> dict[str, Any]:
    """Delete every k2 image (the builder cache goes with them), then build all."""
    images = k2_images()
    if images:
        subprocess.run(["docker", "image", "rm", "-f", *images], capture_output=True, check=True)
    subprocess.run(["docker", "image", "prune", "-f"], capture_output=True, check=True)
    caches = _host_caches()
    seconds = _timed([sys.executable, "-m", "k2.stack", "images"])
    return {"seconds": seconds, "host_caches_before": caches}


def _project_args(project: str, env_file: Path, profile: str) -> list[str]:
    args = ["docker", "compose", "--env-file", str(env_file)]
    for name in COMPOSE_FILES:
        args += ["-f", str(ROOT / name)]
    return [*args, "-p", project, "--profile", profile]


def plain_up(env_dir: Path, profile: str = "minimal") -> dict[str, Any]:
    """Plain `up --wait` of `profile` on a fresh project, then `down -v`."""
    project = f"k2bench-{uuid.uuid4().hex[:8]}"
    env_file = env_dir / f"{project}.env"
    env_file.write_text(f"K2_KAFKA_HOST_PORT={free_port()}\n")
    args = _project_args(project, env_file, profile)
    try:
        up = _timed([*args, "up", "--wait", "--quiet-pull"])
    finally:
        down = _timed([*args, "down", "-v", "--remove-orphans"])
    return {"up_wait_s": up, "down_v_s": down, "left_behind": leftovers(Engine(), project)}


BYTECODE_OFF = "PYTHONDONTWRITEBYTECODE"
"""Set in some shells and CI images: every pytest start then recompiles and re-rewrites the
plugin's, the conftests' and the tests' modules (about 160; 1.8 s against 3.7 s per collection
on a loaded 2-core machine). The runs measure Python's default, which a developer has."""


def _pytest_env() -> dict[str, str]:
    """The benchmark's environment for pytest: not CI, bytecode caches written and read."""
    return {key: value for key, value in os.environ.items() if key not in ("CI", BYTECODE_OFF)}


def warm_bytecode_caches() -> dict[str, Any]:
    """One collection first, so every timed run starts as a developer's second run does."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "e2e", FIRST_TEST],
        cwd=ROOT,
        env=_pytest_env(),
        capture_output=True,
        check=True,
    )
    return {
        "caller_disabled_bytecode": bool(os.environ.get(BYTECODE_OFF)),
        "warm_up_collection_s": round(time.perf_counter() - started, 2),
    }


def layer_first_test(
    env_dir: Path, *extra: str, profile: str = "minimal", test: str = FIRST_TEST
) -> dict[str, Any]:
    """Launch pytest on one stack test; seconds until its body starts, and the whole run."""
    mark = env_dir / f"first-{uuid.uuid4().hex[:8]}"
    env = _pytest_env()
    env["K2_BENCH_FIRST_TEST_FILE"] = str(mark)
    env["K2_E2E_PROFILE"] = profile
    started = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "benchmarks.first_test_clock",
            "-m",
            "e2e",
            "-q",
            "-p",
            "no:cacheprovider",
            *extra,
            test,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    whole = time.time() - started
    if proc.returncode != 0 or not mark.exists():
        sys.exit(f"benchmark pytest run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    clock = json.loads(mark.read_text())
    slowest = sorted(clock["fixtures"].items(), key=lambda item: -item[1])[:FIXTURES_SHOWN]
    return {
        "time_to_first_test_s": round(clock["first_test"] - started, 2),
        "whole_run_s": round(whole, 2),
        "where": {
            "pytest_and_plugins_loaded_s": round(clock["configured"] - started, 2),
            "collection_s": round(clock["collected"] - clock["configured"], 2),
            "fixtures_s": round(sum(clock["fixtures"].values()), 2),
            "slowest_fixtures_s": dict(slowest),
        },
    }


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def startup(repeats: int, env_dir: Path, profile: str = "minimal") -> dict[str, Any]:
    """Plain `up --wait` and the layer, alternated so drift in machine load hits both."""
    plain: list[dict[str, Any]] = []
    layer: list[dict[str, Any]] = []
    for i in range(repeats):
        if i % 2 == 0:
            plain.append(plain_up(env_dir, profile))
            layer.append(layer_first_test(env_dir, profile=profile))
        else:
            layer.append(layer_first_test(env_dir, profile=profile))
            plain.append(plain_up(env_dir, profile))
    ratio = _median(layer, "time_to_first_test_s") / _median(plain, "up_wait_s")
    # Each pair ran back to back, so its difference is the layer's cost under similar load.
    overheads = [
        round(lay["time_to_first_test_s"] - pla["up_wait_s"], 2)
        for lay, pla in zip(layer, plain, strict=True)
    ]
    return {
        "profile": profile,
        "pairwise_overhead_s": overheads,
        "median_pairwise_overhead_s": statistics.median(overheads),
        "plain_up_wait": {"runs": plain, "median_s": _median(plain, "up_wait_s")},
        "layer": {
            "runs": layer,
            "median_time_to_first_test_s": _median(layer, "time_to_first_test_s"),
        },
        "layer_to_plain_ratio": round(ratio, 3),
    }


def reuse(
    repeats: int, env_dir: Path, test: str = FIRST_TEST, profile: str = "minimal"
) -> dict[str, Any]:
    """`--e2e-reuse`: one run to start and keep the stack, then timed runs that reuse it.

    A reusable stack that was already up would make the first run a reuse too, and removing
    it afterwards would take a developer's stack: the benchmark refuses to start then.
    """
    engine = Engine()
    reused_prefix = reuse_project_name(PROJECT_PREFIX, "")
    existing = {r.project for r in engine.resources() if r.project.startswith(reused_prefix)}
    if existing:
        sys.exit(f"reusable stacks already up ({', '.join(sorted(existing))}): remove them first")
    try:
        warmup = layer_first_test(env_dir, "--e2e-reuse", profile=profile, test=test)
        runs = [
            layer_first_test(env_dir, "--e2e-reuse", profile=profile, test=test)
            for _ in range(repeats)
        ]
    finally:
        kept = [r for r in engine.resources() if r.project.startswith(reused_prefix)]
        engine.remove(kept)
        for project in {r.project for r in kept}:
            # The kept stack's variables and labels, which a later --e2e-reuse would adopt.
            shutil.rmtree(project_run_dir(ROOT, project), ignore_errors=True)
    return {
        "test": test,
        "profile": profile,
        "first_run_starting_it": warmup,
        "runs": runs,
        "median_time_to_first_test_s": _median(runs, "time_to_first_test_s"),
    }


def main() -> None:
    """Run the measurements and write benchmarks/results/stack.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="delete k2 images and rebuild all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": describe(), "commit": head_commit(ROOT), "goals": GOALS}
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.cold:
        results["cold_build"] = cold_build()
    elif "cold_build" in previous:
        # Keep the last cold figure, marked with the run that measured it (a kept one already
        # names it: the previous run only carried it over).
        results["cold_build"] = {"from_run": previous["machine"]["when"], **previous["cold_build"]}
    subprocess.run([sys.executable, "-m", "k2.stack", "images"], cwd=ROOT, check=True)
    rebuilds = [_timed([sys.executable, "-m", "k2.stack", "images"]) for _ in range(args.repeats)]
    results["no_change_rebuild"] = {"runs_s": rebuilds, "median_s": statistics.median(rebuilds)}
    env_dir = ROOT / ".build" / "bench"
    env_dir.mkdir(parents=True, exist_ok=True)
    results["python_bytecode"] = warm_bytecode_caches()
    results["startup"] = {
        profile: startup(args.repeats, env_dir, profile) for profile in args.profiles
    }
    results["reuse"] = reuse(args.repeats, env_dir)
    results["reuse_feeding_test"] = reuse(args.repeats, env_dir, FEEDING_TEST, "full")
    write_results(args.output, results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
