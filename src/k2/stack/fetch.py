"""Fetch an image's artifacts on the host, into its build context.

Builds never download over HTTPS themselves: the host's package clients already know the
machine's mirrors, proxies and CA bundle (and cache what they fetch), while a container on
these machines would fail TLS. Each fetch kind is one ordinary client call.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k2.stack._proc import Ticker, run_reporting, tail

FETCH_TIMEOUT_S = 1800


class FetchError(Exception):
    """A fetch step failed; the message names the artifact."""


@dataclass(frozen=True)
class FetchStep:
    """One `[[fetch]]` entry of an `image.toml`."""

    kind: str
    dest: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, raw: dict[str, Any]) -> FetchStep:
        """Validate a raw table, so a typo fails before any download starts."""
        kind = raw.get("kind")
        if kind not in _FETCHERS:
            raise ValueError(f"unknown fetch kind {kind!r} (known: {', '.join(_FETCHERS)})")
        dest = raw.get("dest")
        if not isinstance(dest, str) or not dest or Path(dest).is_absolute() or ".." in dest:
            raise ValueError(f"fetch dest must be a relative path inside the context: {dest!r}")
        options = {k: v for k, v in raw.items() if k not in ("kind", "dest")}
        missing = [key for key in _REQUIRED[kind] if key not in options]
        if missing:
            raise ValueError(f"fetch kind {kind!r} needs {', '.join(missing)}")
        if kind == "go" and ("version" in options) == ("module" in options):
            raise ValueError("fetch kind 'go' needs exactly one of version or module")
        return cls(kind=kind, dest=dest, options=options)

    def describe(self) -> str:
        """What is fetched, as a user would name it."""
        if self.kind == "go" and "version" in self.options:
            return f"go module {self.options['package']}@{self.options['version']}"
        if self.kind == "go":
            return f"go package {self.options['package']} pinned by {self.options['module']}"
        if self.kind == "pip":
            extras = ",".join(self.options.get("extras", []))
            return f"python wheels of {self.options['project']}[{extras}]"
        return f"maven dependencies of {self.options['pom']}"

    def run(self, context: Path, repo_root: Path, say: Callable[[str], None] = print) -> None:
        """Fetch into `context / dest`; paths in options are relative to the repo root.

        `say` hears, at least every 15 s, what the fetch has done so far and is doing now.
        """
        dest = context / self.dest
        with Ticker(say, measure=lambda: _size_of(dest)) as ticker:
            _FETCHERS[self.kind](self, context, repo_root, ticker)


def _size_of(directory: Path) -> str:
    """How much the fetch has put in its destination so far ('' while nothing)."""
    files = [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []
    total = sum(p.stat().st_size for p in files)
    return f"{total / 1e6:.1f} MB in {directory.name}/" if total else ""


_MAVEN_DOWNLOADED = re.compile(r"Downloaded from [^:]+: \S+/([^/\s]+)")
_MAVEN_COPYING = re.compile(r"Copying (\S+) to ")


def _maven_line(line: str) -> tuple[str, str] | None:
    # Only the artifact's file name: never the repository's address.
    if found := _MAVEN_DOWNLOADED.search(line):
        return "downloaded", found.group(1)
    if found := _MAVEN_COPYING.search(line):
        return "copied", found.group(1)
    return None


_GO_DOWNLOADING = re.compile(r"^go: downloading (\S+) (\S+)")
_GO_PACKAGE = re.compile(r"^[\w.~+-]+(/[\w.~+-]+)*$")


def _go_line(line: str) -> tuple[str, str] | None:
    # `go install -v` prints each package as it is compiled.
    if found := _GO_DOWNLOADING.match(line):
        return "modules downloaded", f"{found.group(1)}@{found.group(2)}"
    if _GO_PACKAGE.match(line.strip()):
        return "packages compiled", line.strip()
    return None


_PIP_LINE = re.compile(r"^\s*(Collecting|Downloading|File was already downloaded) (\S+)")
_PIP_KINDS = {"Collecting": "resolved", "Downloading": "downloaded"}


def _pip_line(line: str) -> tuple[str, str] | None:
    if found := _PIP_LINE.match(line):
        name = Path(found.group(2)).name
        return _PIP_KINDS.get(found.group(1), "already here"), name
    return None


def _maven(step: FetchStep, context: Path, _repo_root: Path, ticker: Ticker) -> None:
    pom = context / str(step.options["pom"])
    args = [
        "mvn",
        "-B",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={context / step.dest}",
        "-DincludeScope=runtime",
    ]
    if step.options.get("exclude_transitive"):
        args.append("-DexcludeTransitive=true")
    proc = run_reporting(args, ticker, _maven_line, timeout=FETCH_TIMEOUT_S)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        missing = re.search(r"Could not (?:find|resolve|transfer) artifact (\S+)", output)
        what = missing.group(1) if missing else step.describe()
        raise FetchError(f"maven could not fetch {what}:\n{tail(output, 8)}")


def _go(step: FetchStep, context: Path, _repo_root: Path, ticker: Ticker) -> None:
    """`go install pkg@version`, or, with `module`, inside that go.mod (pins non-semver tags)."""
    flags = [str(flag) for flag in step.options.get("flags", [])]
    env = {**os.environ, "GOBIN": str(context / step.dest), "CGO_ENABLED": "0"}
    if "module" in step.options:
        target = str(step.options["package"])
        module_dir = (context / str(step.options["module"])).parent
        args = ["go", "install", "-v", "-mod=readonly", *flags, target]
    else:
        target = f"{step.options['package']}@{step.options['version']}"
        module_dir = context
        args = ["go", "install", "-v", *flags, target]
    proc = run_reporting(
        args, ticker, _go_line, timeout=FETCH_TIMEOUT_S, env=env, cwd=str(module_dir)
    )
    if proc.returncode != 0:
        raise FetchError(
            f"go install of {step.describe()} failed:\n{tail(proc.stderr + proc.stdout, 8)}"
        )


# The Python services run Debian bookworm's python3 (3.11, glibc 2.36) on x86_64: wheels are
# chosen for that target explicitly, so a host of another OS or CPython still fetches the
# right ones.
# pip does not widen an explicit --platform to older glibc tags, so every compatible one is
# named: bookworm's glibc 2.36 runs wheels built for any manylinux up to 2.36.
PIP_TARGET = (
    "--only-binary=:all:",
    "--python-version=3.11",
    "--implementation=cp",
    "--abi=cp311",
    *(f"--platform=manylinux_2_{minor}_x86_64" for minor in range(5, 37)),
    "--platform=manylinux2014_x86_64",
    "--platform=manylinux2010_x86_64",
    "--platform=manylinux1_x86_64",
)


# What a wheel of the project is built from. Built in a copy: setuptools builds in the source
# tree and never empties its build/ directory, so a module deleted from src/ would still ship.
_PROJECT_FILES = ("pyproject.toml", "README.md", "src")
_NOT_SOURCES = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")


def _pip(step: FetchStep, context: Path, repo_root: Path, ticker: Ticker) -> None:
    """Build the project's wheel, then download every dependency's wheel for the target."""
    dest = context / step.dest
    project = repo_root / str(step.options["project"])
    with tempfile.TemporaryDirectory(prefix="k2-wheel-") as scratch:
        source = Path(scratch) / "project"
        source.mkdir()
        for name in _PROJECT_FILES:
            if (project / name).is_dir():
                shutil.copytree(project / name, source / name, ignore=_NOT_SOURCES)
            else:
                shutil.copy2(project / name, source / name)
        build = run_reporting(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--quiet",
                "-w",
                str(dest),
                str(source),
            ],
            ticker,
            _pip_line,
            timeout=FETCH_TIMEOUT_S,
        )
    if build.returncode != 0:
        raise FetchError(
            f"building the wheel of {project} failed:\n{tail(build.stdout + build.stderr, 8)}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"expected one wheel of {project} in {dest}, found {len(wheels)}")
    extras = ",".join(step.options.get("extras", []))
    requirement = f"{wheels[0]}[{extras}]" if extras else str(wheels[0])
    args = [sys.executable, "-m", "pip", "download", "-d", str(dest), *PIP_TARGET]
    if "constraints" in step.options:
        args += ["-c", str(repo_root / str(step.options["constraints"]))]
    proc = run_reporting([*args, requirement], ticker, _pip_line, timeout=FETCH_TIMEOUT_S)
    if proc.returncode != 0:
        output = proc.stderr + proc.stdout
        missing = re.search(r"No matching distribution found for (\S+)", output)
        what = missing.group(1) if missing else step.describe()
        raise FetchError(f"pip could not fetch {what}:\n{tail(output, 8)}")


_FETCHERS = {"maven": _maven, "go": _go, "pip": _pip}
_REQUIRED = {"maven": ("pom",), "go": ("package",), "pip": ("project",)}
