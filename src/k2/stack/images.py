"""Build the service images under `docker/`, only those whose inputs changed.

Each image is tagged `k2/<service>:<hash>` where the hash covers everything that goes into
it (its directory, its declared extra inputs, the base image id); `k2/<service>:local`, the
tag the compose files use, is moved to it only after a successful build. So a no-change run
is a hash and one `docker image inspect`, and a failed build never leaves a tag behind that
looks good.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from k2.stack import transfer
from k2.stack._proc import Ticker, run, tail
from k2.stack.baseimage import BASE_IMAGE, ensure_base_image
from k2.stack.errors import StackError
from k2.stack.fetch import FetchError, FetchStep

REPOSITORY = "k2"
MOVING_TAG = "local"
HASH_LEN = 16
# Bumped when the way a context is staged changes, so old tags stop matching.
_SCHEME = "k2-image-v1"
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


@dataclass(frozen=True)
class ImageSpec:
    """One service image: its directory under `docker/` and what `image.toml` declares."""

    service: str
    directory: Path
    fetch: tuple[FetchStep, ...]
    extra_inputs: tuple[Path, ...]

    @property
    def moving_ref(self) -> str:
        """The tag the compose files reference."""
        return f"{REPOSITORY}/{self.service}:{MOVING_TAG}"

    def ref(self, inputs_hash: str) -> str:
        """The content-keyed tag of a build of these inputs."""
        return f"{REPOSITORY}/{self.service}:{inputs_hash}"


def load_specs(repo_root: Path) -> list[ImageSpec]:
    """Every `docker/*/image.toml`, sorted by service name."""
    specs = []
    for toml_path in sorted((repo_root / "docker").glob("*/image.toml")):
        directory = toml_path.parent
        try:
            raw = tomllib.loads(toml_path.read_text())
            steps = tuple(FetchStep.from_toml(entry) for entry in raw.get("fetch", []))
        except (tomllib.TOMLDecodeError, ValueError) as exc:
            raise StackError(f"{toml_path} is invalid ({exc})", "fix that file") from exc
        extra = tuple(repo_root / rel for rel in raw.get("extra_inputs", []))
        for path in extra:
            if not path.exists():
                raise StackError(f"{toml_path} lists a missing input {path}", "fix that file")
        specs.append(ImageSpec(directory.name, directory, steps, extra))
    if not specs:
        raise StackError(f"no docker/*/image.toml under {repo_root}", "run from the repo root")
    return specs


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in sorted(root.rglob("*")):
        if (
            path.is_file()
            and not _IGNORED_PARTS.intersection(path.parts)
            and path.suffix != ".pyc"
            # Written into src/ by an editable install (dev venv, tox): not an input.
            and not any(part.endswith(".egg-info") for part in path.parts)
        ):
            yield path


def inputs_hash(spec: ImageSpec, base_image_id: str, repo_root: Path) -> str:
    """Hash of everything a build of this image reads: path, exec bit and bytes of each file."""
    digest = hashlib.sha256(f"{_SCHEME}\0{base_image_id}\0".encode())
    for root in (spec.directory, *spec.extra_inputs):
        for path in _files(root):
            rel = path.relative_to(repo_root).as_posix()
            executable = os.access(path, os.X_OK)
            digest.update(f"{rel}\0{int(executable)}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:HASH_LEN]


def _image_ids(refs: Iterable[str]) -> dict[str, str]:
    """Map each present reference to its image id, in one engine call."""
    refs = list(refs)
    proc = run(["docker", "image", "inspect", *refs], timeout=60)
    # Inspect prints the images it found even when some references are missing.
    found = json.loads(proc.stdout or "[]")
    ids: dict[str, str] = {}
    for image in found:
        for tag in image.get("RepoTags") or []:
            if tag in refs:
                ids[tag] = image["Id"]
    return ids


@dataclass(frozen=True)
class PlannedImage:
    """An image with its current inputs hash and whether it must be built."""

    spec: ImageSpec
    inputs_hash: str
    state: str
    """"up to date", "retag" (built before, moving tag elsewhere), "build" or "copy"."""

    @property
    def ref(self) -> str:
        """Content-keyed tag for this plan."""
        return self.spec.ref(self.inputs_hash)


def plan(specs: list[ImageSpec], repo_root: Path, force: bool = False) -> list[PlannedImage]:
    """Decide per image: up to date, only retag, or build."""
    base_id = ensure_base_image()
    hashes = {spec.service: inputs_hash(spec, base_id, repo_root) for spec in specs}
    refs = [spec.ref(hashes[spec.service]) for spec in specs]
    present = _image_ids(refs + [spec.moving_ref for spec in specs])
    planned = []
    for spec in specs:
        ref = spec.ref(hashes[spec.service])
        if force or ref not in present:
            state = "build"
        elif present.get(spec.moving_ref) != present[ref]:
            state = "retag"
        else:
            state = "up to date"
        planned.append(PlannedImage(spec, hashes[spec.service], state))
    return planned


def _stage(item: PlannedImage, build_root: Path, repo_root: Path) -> Path:
    """A fresh build context: the service directory, then its fetched artifacts."""
    context = build_root / item.spec.service
    if context.exists():
        shutil.rmtree(context)
    shutil.copytree(item.spec.directory, context, ignore=shutil.ignore_patterns(*_IGNORED_PARTS))
    for step in item.spec.fetch:
        step.run(context, repo_root, lambda line: _say(item.spec.service, line))
    return context


def _say(service: str, message: str) -> None:
    print(f"  {service:<16} {message}", flush=True)


def _docker_build(item: PlannedImage, context: Path, log_path: Path) -> None:
    """Classic-builder `docker build`, echoing each step so a slow build shows progress."""
    args = [
        "docker",
        "build",
        "--pull=false",
        "--force-rm",
        "--label",
        f"org.k2.service={item.spec.service}",
        "--label",
        f"org.k2.inputs-hash={item.inputs_hash}",
        "-t",
        item.ref,
        str(context),
    ]
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    say = functools.partial(_say, item.spec.service)
    with log_path.open("w") as log, Ticker(say) as ticker:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if line.startswith("Step "):
                say(line.strip()[:100])
                ticker.said()
            elif line.strip():
                ticker.doing(line.strip())  # what a long RUN step prints (apt, pip)
        code = proc.wait()
    if code != 0:
        raise StackError(
            f"docker build of {item.spec.service} failed:\n{tail(log_path.read_text(), 20)}",
            f"full log in {log_path}",
        )


def _tag_and_prune(item: PlannedImage) -> None:
    """Point the moving tag at this build and drop this service's older content tags."""
    if run(["docker", "tag", item.ref, item.spec.moving_ref], timeout=60).returncode != 0:
        raise StackError(f"could not tag {item.ref} as {item.spec.moving_ref}", "see the engine")
    listing = run(
        [
            "docker",
            "image",
            "ls",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            f"{REPOSITORY}/{item.spec.service}",
        ],
        timeout=60,
    )
    stale = [ref for ref in listing.stdout.split() if ref not in (item.ref, item.spec.moving_ref)]
    if stale:
        # Untagging only: an image still used by a container stays until that container goes.
        run(["docker", "image", "rm", *stale], timeout=120)


def _copied(planned: list[PlannedImage], source: str) -> list[PlannedImage]:
    """Plan a copy from `source` for every image to build that `source` has built already."""
    to_build = [item.ref for item in planned if item.state == "build"]
    there = transfer.present(to_build, transfer.engine_env(source))
    return [
        replace(item, state="copy") if item.state == "build" and item.ref in there else item
        for item in planned
    ]


def build(
    repo_root: Path, only: list[str] | None = None, force: bool = False, source: str | None = None
) -> list[PlannedImage]:
    """Bring every (or each named) service image up to date; return what was planned.

    Fetches run in parallel (they mostly wait on the network), builds one at a time (the
    machines have two cores). Every image that can be built is; failures are reported
    together at the end, and none of them is tagged. With `source` (another engine's
    DOCKER_HOST), the base image and every image that engine holds for the same inputs are
    copied from it instead of built.
    """
    specs = load_specs(repo_root)
    if only:
        unknown = sorted(set(only) - {spec.service for spec in specs})
        if unknown:
            known = ", ".join(spec.service for spec in specs)
            raise StackError(f"unknown image(s) {', '.join(unknown)}", f"choose from {known}")
        specs = [spec for spec in specs if spec.service in only]
    started = time.monotonic()
    if source is not None and not transfer.present([BASE_IMAGE]):
        print(f"k2-stack: copying {BASE_IMAGE} from {source}", flush=True)
        transfer.copy([BASE_IMAGE], source)
    planned = plan(specs, repo_root, force=force)
    if source is not None and not force:
        planned = _copied(planned, source)
    for item in planned:
        _say(item.spec.service, f"{item.state} ({item.ref})")
    to_copy = [item for item in planned if item.state == "copy"]
    if to_copy:
        copy_started = time.monotonic()
        transfer.copy([item.ref for item in to_copy], source or "")
        for item in to_copy:
            _tag_and_prune(item)
        print(
            f"k2-stack: copied {len(to_copy)} image(s) from {source} in "
            f"{time.monotonic() - copy_started:.1f}s",
            flush=True,
        )
    build_root = repo_root / ".build" / "images"
    build_root.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    to_build = [item for item in planned if item.state == "build"]
    with ThreadPoolExecutor(max_workers=max(1, len(to_build))) as pool:
        staged: list[tuple[PlannedImage, Future[Path]]] = [
            (item, pool.submit(_stage, item, build_root, repo_root)) for item in to_build
        ]
        for item in planned:
            if item.state == "retag":
                _tag_and_prune(item)
        for item, future in staged:
            service = item.spec.service
            item_started = time.monotonic()
            try:
                _say(service, "fetching artifacts")
                context = future.result()
                _docker_build(item, context, build_root / f"{service}.build.log")
                _tag_and_prune(item)
                _say(service, f"built in {time.monotonic() - item_started:.1f}s")
            except FetchError as exc:
                failures.append(f"{service}: {exc}")
                _say(service, "FAILED (fetch)")
            except StackError as exc:
                failures.append(f"{service}: {exc}")
                _say(service, "FAILED (build)")
    print(f"k2-stack: images done in {time.monotonic() - started:.1f}s", flush=True)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        names = ", ".join(failure.split(":", 1)[0] for failure in failures)
        raise StackError(f"image build failed for {names}", "see the messages above")
    return planned
