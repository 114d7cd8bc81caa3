"""The layer's options: each one a command-line flag, an ini key and an environment variable.

Precedence is flag, then environment, then ini, then default: CI sets variables, a developer
types flags, and the project's defaults live in pyproject.toml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROFILES = ("minimal", "full")
DEFAULT_ARTIFACTS = "e2e-artifacts"
DEFAULT_FRESHNESS_SLO_S = 5.0
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Option:
    """One option's three spellings and its help."""

    flag: str
    ini: str
    env: str
    help: str
    is_flag: bool = False


OPTIONS = {
    "profile": Option(
        "--e2e-profile",
        "e2e_profile",
        "K2_E2E_PROFILE",
        "compose profile the stack starts with: minimal or full (default minimal; a test "
        "that needs full grows the stack)",
    ),
    "keep": Option(
        "--e2e-keep",
        "e2e_keep",
        "K2_E2E_KEEP",
        "leave the stack running after the session and print how to reach it",
        is_flag=True,
    ),
    "reuse": Option(
        "--e2e-reuse",
        "e2e_reuse",
        "K2_E2E_REUSE",
        "reuse a running stack with the same compose config (started and kept if none); "
        "refused under CI and in the gate",
        is_flag=True,
    ),
    "artifacts": Option(
        "--e2e-artifacts",
        "e2e_artifacts",
        "K2_E2E_ARTIFACTS",
        f"directory for failure bundles and reports (default ./{DEFAULT_ARTIFACTS})",
    ),
    "cpus": Option(
        "--e2e-cpus",
        "e2e_cpus",
        "K2_E2E_CPUS",
        "run the stack and the tests as if on a slower machine: N cores in all for every "
        "container, the tests and their feed (e.g. 1 on a 2-core machine: half the CPU); "
        "needs a local engine with the cgroupfs driver",
    ),
    "freshness_slo": Option(
        "--e2e-freshness-slo",
        "e2e_freshness_slo",
        "K2_E2E_FRESHNESS_SLO_S",
        f"freshness SLO in seconds: p99 of sent-to-served must stay within it "
        f"(default {DEFAULT_FRESHNESS_SLO_S:g})",
    ),
}


def add_options(parser: pytest.Parser) -> None:
    """Register every option as a flag and an ini key."""
    group = parser.getgroup("k2-e2e", "K2 end-to-end stack")
    for name, opt in OPTIONS.items():
        if opt.is_flag:
            group.addoption(
                opt.flag,
                action="store_true",
                default=None,
                dest=f"e2e_{name}",
                help=f"{opt.help} [env {opt.env}]",
            )
            parser.addini(opt.ini, opt.help, type="bool", default=False)
        else:
            group.addoption(
                opt.flag, default=None, dest=f"e2e_{name}", help=f"{opt.help} [env {opt.env}]"
            )
            parser.addini(opt.ini, opt.help, default="")


# pytest prints a UsageError as one line and exits: exactly what a bad option value needs.
OptionError = pytest.UsageError


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise OptionError(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no")


@dataclass(frozen=True)
class E2EOptions:
    """The resolved options of one session."""

    profile: str
    keep: bool
    reuse: bool
    artifacts: Path
    freshness_slo_s: float = DEFAULT_FRESHNESS_SLO_S
    cpus: float | None = None

    @classmethod
    def resolve(
        cls,
        flags: Mapping[str, Any],
        ini: Mapping[str, Any],
        env: Mapping[str, str],
        rootpath: Path,
    ) -> E2EOptions:
        """Combine the three sources; pure, so the precedence is unit-tested."""

        def pick(name: str) -> Any:
            opt = OPTIONS[name]
            if flags.get(name) is not None:
                return flags[name]
            if opt.env in env:
                return _parse_bool(opt.env, env[opt.env]) if opt.is_flag else env[opt.env]
            return ini.get(name) or None

        profile = str(pick("profile") or "minimal")
        if profile not in PROFILES:
            raise OptionError(
                f"--e2e-profile {profile!r} is not a profile: choose {' or '.join(PROFILES)}"
            )
        reuse = bool(pick("reuse"))
        keep = bool(pick("keep"))
        if reuse:
            for var, why in (("CI", "under CI"), ("K2_E2E_GATE", "in the pre-release gate")):
                if env.get(var, "").strip().lower() in _TRUE:
                    raise OptionError(
                        f"--e2e-reuse is refused {why} ({var} is set): a reused stack may hold "
                        "data of earlier runs; drop the option (or the variable) to run fresh"
                    )
        artifacts = Path(str(pick("artifacts") or DEFAULT_ARTIFACTS))
        if not artifacts.is_absolute():
            artifacts = rootpath / artifacts
        slo = pick("freshness_slo")
        try:
            slo_s = float(slo) if slo is not None else DEFAULT_FRESHNESS_SLO_S
        except ValueError:
            slo_s = -1.0
        if not 0 < slo_s < float("inf"):
            raise OptionError(
                f"--e2e-freshness-slo {slo!r} is not a positive number of seconds (e.g. 3 or 2.5)"
            )
        cpus_text = pick("cpus")
        try:
            cpus = float(cpus_text) if cpus_text not in (None, "") else None
        except ValueError:
            cpus = -1.0
        if cpus is not None and not 0 < cpus < float("inf"):
            raise OptionError(
                f"--e2e-cpus {cpus_text!r} is not a positive number of cores (e.g. 1 or 1.5)"
            )
        return cls(
            profile=profile,
            keep=keep or reuse,
            reuse=reuse,
            artifacts=artifacts,
            freshness_slo_s=slo_s,
            cpus=cpus,
        )

    @classmethod
    def from_config(cls, config: pytest.Config) -> E2EOptions:
        """Resolve from a pytest config and this process's environment."""
        flags = {name: config.getoption(f"e2e_{name}") for name in OPTIONS}
        ini = {name: config.getini(opt.ini) for name, opt in OPTIONS.items()}
        return cls.resolve(flags, ini, os.environ, config.rootpath)
