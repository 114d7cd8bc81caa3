"""Provide `debian:bookworm-slim`, the one base every service image is built on.

A machine that can pull gets the real image. A machine with no container registry gets one
made with debootstrap from the Debian mirror the machine's own apt configuration names, so
no mirror host is ever written into the repo.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from k2.stack._proc import Ticker, run, run_reporting, tail
from k2.stack.engine import apt_install
from k2.stack.errors import StackError

BASE_IMAGE = "debian:bookworm-slim"
SUITE = "bookworm"
# Pruned from the debootstrap tree: nothing in a service image reads them.
_PRUNE = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt", "var/lib/apt/lists")
# What the official slim image ships as /etc/apt/apt.conf.d/docker-clean: without it every
# `apt-get install` layer keeps its downloaded .deb files (100+ MB for a JRE).
_CLEAN_DEBS = (
    '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb '
    '/var/cache/apt/*.bin || true";'
)
_APT_DOCKER_CLEAN = (
    f"DPkg::Post-Invoke {{ {_CLEAN_DEBS} }};\n"
    f"APT::Update::Post-Invoke {{ {_CLEAN_DEBS} }};\n"
    'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
)


def image_id(ref: str) -> str | None:
    """Local image id of a reference, or None when absent."""
    proc = run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 else None


def mirrors_from_apt(etc_apt: Path = Path("/etc/apt")) -> list[str]:
    """Debian archive URIs that serve the bookworm suite, in the order apt lists them."""
    found: list[str] = []
    for sources in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", sources.read_text()):
            fields = dict(
                (key.strip().lower(), value.strip())
                for key, _, value in (
                    line.partition(":") for line in stanza.splitlines() if ":" in line
                )
                if not key.startswith("#")
            )
            if (
                "deb" in fields.get("types", "").split()
                and SUITE in fields.get("suites", "").split()
            ):
                found.extend(fields.get("uris", "").split())
    legacy = etc_apt / "sources.list"
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split("#", 1)[0].split()
            # deb [options] URI SUITE COMPONENTS...
            words = [p for p in parts if not p.startswith("[") and not p.endswith("]")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                found.append(words[1])
    return list(dict.fromkeys(found))


def _try_pull() -> bool:
    """Pull the real image; on a machine with no registry this fails at once."""
    return run(["docker", "pull", "-q", BASE_IMAGE], timeout=300).returncode == 0


_DEBOOTSTRAP_STEP = re.compile(
    r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) (\S+)"
)


def _debootstrap_line(line: str) -> tuple[str, str] | None:
    """Debootstrap's `I: Retrieving libc6 2.36-9` lines, as (what it did, package)."""
    if found := _DEBOOTSTRAP_STEP.match(line):
        return found.group(1).lower(), found.group(2)
    return None


def _debootstrap(mirror: str, rootfs: Path) -> None:
    if not shutil.which("debootstrap"):
        if os.geteuid() != 0:
            raise StackError(
                f"{BASE_IMAGE} cannot be pulled and debootstrap is missing",
                "pull the image on a machine with registry access, or install debootstrap",
            )
        apt_install("debootstrap")
    with Ticker(lambda line: print(f"k2-stack: {BASE_IMAGE}: {line}", flush=True)) as ticker:
        proc = run_reporting(
            ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
            ticker,
            _debootstrap_line,
            timeout=1200,
        )
    if proc.returncode != 0:
        raise StackError(
            f"debootstrap of {SUITE} failed:\n{tail(proc.stdout + proc.stderr)}",
            "check the Debian mirror in /etc/apt (or K2_DEBIAN_MIRROR) answers",
        )
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(_APT_DOCKER_CLEAN)
    for rel in _PRUNE:
        target = rootfs / rel
        if target.is_dir():
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def _import(rootfs: Path) -> None:
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    imp = subprocess.run(
        ["docker", "import", "--change", 'CMD ["bash"]', "-", BASE_IMAGE],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    tar.stdout.close()
    if tar.wait() != 0 or imp.returncode != 0:
        raise StackError(
            f"docker import of {BASE_IMAGE} failed: {imp.stderr.strip()}",
            "check the engine's free disk space and its log",
        )


def ensure_base_image() -> str:
    """Return the id of `debian:bookworm-slim`, pulling or building it only when absent."""
    existing = image_id(BASE_IMAGE)
    if existing:
        return existing
    started = time.monotonic()
    print(f"k2-stack: {BASE_IMAGE} is absent; trying a pull", flush=True)
    if not _try_pull():
        override = os.environ.get("K2_DEBIAN_MIRROR")
        mirrors = [override] if override else mirrors_from_apt()
        if not mirrors:
            raise StackError(
                f"{BASE_IMAGE} is absent, cannot be pulled, and no Debian {SUITE} mirror is "
                "configured in /etc/apt",
                "pull the image where a registry is reachable, or set K2_DEBIAN_MIRROR",
            )
        print(f"k2-stack: pull failed; building {BASE_IMAGE} with debootstrap", flush=True)
        with tempfile.TemporaryDirectory(prefix="k2-rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            _debootstrap(mirrors[0], rootfs)
            _import(rootfs)
    made = image_id(BASE_IMAGE)
    if not made:
        raise StackError(f"{BASE_IMAGE} is still absent after building it", "see messages above")
    print(f"k2-stack: {BASE_IMAGE} ready in {time.monotonic() - started:.1f}s", flush=True)
    return made
