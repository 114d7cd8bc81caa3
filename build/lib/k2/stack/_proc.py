"""Small subprocess helpers shared by the stack tooling."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence


def run(
    args: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output, never raising on a non-zero exit.

    Callers decide what a failure means; they need the output to say why.
    """
    try:
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(list(args), 127, "", f"{args[0]}: not found ({exc})")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return subprocess.CompletedProcess(list(args), 124, out, f"timed out after {timeout}s")


def tail(text: str, lines: int = 15) -> str:
    """Last lines of a command's output, enough to show why it failed."""
    return "\n".join(text.strip().splitlines()[-lines:])
