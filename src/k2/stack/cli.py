"""`k2-stack`: the command tox and CI call to make the stack buildable and runnable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from k2.stack import baseimage, engine, images
from k2.stack.errors import StackError


def _repo_root() -> Path:
    """The checkout this command runs in: the nearest parent holding `docker/`."""
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "docker").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise StackError(f"{here} is not inside the K2 checkout", "cd into the repository first")


def _cmd_engine(_: argparse.Namespace) -> None:
    print(
        f"k2-stack: docker engine {engine.ensure_engine()}, compose {engine.ensure_compose()}",
        flush=True,
    )


def _cmd_base_image(_: argparse.Namespace) -> None:
    engine.ensure_engine()
    print(f"k2-stack: {baseimage.BASE_IMAGE} is {baseimage.ensure_base_image()[:19]}")


def _cmd_images(args: argparse.Namespace) -> None:
    engine.ensure_engine()
    images.build(_repo_root(), only=args.only or None, force=args.force, source=args.source)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run one step, and turn a StackError into one line and exit 2."""
    parser = argparse.ArgumentParser(prog="k2-stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "engine", help="make sure a Docker engine answers and `docker compose` is v2"
    ).set_defaults(func=_cmd_engine)
    sub.add_parser(
        "base-image", help="pull or debootstrap debian:bookworm-slim if absent"
    ).set_defaults(func=_cmd_base_image)
    images_cmd = sub.add_parser("images", help="build the service images whose inputs changed")
    images_cmd.add_argument("only", nargs="*", help="service names (default: all)")
    images_cmd.add_argument("--force", action="store_true", help="rebuild even if up to date")
    images_cmd.add_argument(
        "--from",
        dest="source",
        metavar="DOCKER_HOST",
        help="copy the base image and already built images from the engine at this endpoint "
        "(e.g. unix:///var/run/docker.sock) into the target engine instead of building them",
    )
    images_cmd.set_defaults(func=_cmd_images)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except StackError as exc:
        print(f"k2-stack: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("k2-stack: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
