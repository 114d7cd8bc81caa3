"""The plugin's settings: each one a command-line flag, an ini key and an environment variable.

Precedence is flag, then environment, then ini, then default: CI sets variables, a developer
types flags, and a project's defaults live in its pytest ini. The environment variables are
named after the ini key `e2e_env_prefix` (`E2E_STACK` unless a project names its own), so two
projects on one machine do not read each other's variables.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

DEFAULT_ENV_PREFIX: Final = "E2E_STACK"
DEFAULT_ARTIFACTS: Final = "e2e-artifacts"
DEFAULT_COMPOSE_FILES: Final = ("docker-compose.yml",)
DEFAULT_PROJECT_PREFIX: Final = "e2e"
DEFAULT_LABEL_NAMESPACE: Final = "io.e2e-stack"
ENV_PREFIX_INI: Final = "e2e_env_prefix"
HINTS: Final = {
    "engine_hint": (
        "e2e_engine_hint",
        "what preflight tells a user whose engine does not answer",
        "start the Docker engine",
    ),
    "images_hint": (
        "e2e_images_hint",
        "what preflight tells a user whose images are missing",
        "build or pull them (`docker compose build` / `docker compose pull`)",
    ),
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# What compose accepts as a project name, and what a Docker label key may hold.
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LABEL_NAMESPACE = re.compile(r"^[a-z0-9]+([.-][a-z0-9]+)*$")
_ENDPOINT = re.compile(r"^(unix://.+|(tcp|ssh)://[^\s=]+)$")


@dataclass(frozen=True)
class Option:
    """One setting's spellings (the environment variable is `<prefix>_<env>`) and its help."""

    flag: str
    ini: str
    env: str
    help: str
    is_flag: bool = False
    ini_type: str = "string"


OPTIONS: Final = {
    "compose_files": Option(
        "--e2e-compose-files",
        "e2e_compose_files",
        "COMPOSE_FILES",
        "compose files of the stack, base first, relative to the rootdir "
        f"(default {' '.join(DEFAULT_COMPOSE_FILES)}); the docker_compose_file fixture",
        ini_type="args",
    ),
    "profiles": Option(
        "--e2e-profiles",
        "e2e_profiles",
        "PROFILES",
        "the compose profiles a session may grow through, smallest first (default: every "
        "profile of the compose files, ordered by how many services each starts)",
        ini_type="args",
    ),
    "profile": Option(
        "--e2e-profile",
        "e2e_profile",
        "PROFILE",
        "compose profile the stack starts with (default the smallest; a test that needs a "
        "larger one grows the stack in place)",
    ),
    "project_prefix": Option(
        "--e2e-project-prefix",
        "e2e_project_prefix",
        "PROJECT_PREFIX",
        f"prefix of the compose project names this plugin creates and sweeps "
        f"(default {DEFAULT_PROJECT_PREFIX})",
    ),
    "label_namespace": Option(
        "--e2e-label-namespace",
        "e2e_label_namespace",
        "LABEL_NAMESPACE",
        f"namespace of the labels that mark a run's containers, networks and volumes "
        f"(default {DEFAULT_LABEL_NAMESPACE})",
    ),
    "keep": Option(
        "--e2e-keep",
        "e2e_keep",
        "KEEP",
        "leave the stack running after the session and print how to reach it",
        is_flag=True,
    ),
    "reuse": Option(
        "--e2e-reuse",
        "e2e_reuse",
        "REUSE",
        "reuse a running stack with the same compose config (started and kept if none); "
        "refused under CI and in the gate",
        is_flag=True,
    ),
    "artifacts": Option(
        "--e2e-artifacts",
        "e2e_artifacts",
        "ARTIFACTS",
        f"directory for failure bundles and reports (default ./{DEFAULT_ARTIFACTS})",
    ),
    "cpus": Option(
        "--e2e-cpus",
        "e2e_cpus",
        "CPUS",
        "run the stack and the tests as if on a slower machine: N cores in all for every "
        "container, the tests and the processes they start (e.g. 1 on a 2-core machine: half "
        "the CPU); needs a local engine with the cgroupfs driver",
    ),
    "publish_address": Option(
        "--e2e-publish-address",
        "e2e_publish_address",
        "PUBLISH_ADDRESS",
        "IP address of the engine's host that services publish their ports on and clients "
        "connect to (default 127.0.0.1; for a tcp:// engine at a loopback address, that "
        "address); for a remote engine, one of its host's addresses this machine can reach",
    ),
    "engines": Option(
        "--e2e-engines",
        "e2e_engines",
        "ENGINES",
        "Docker engines to spread stacks over, as ENDPOINT[=PUBLISH_ADDRESS] words (e.g. "
        "unix:///var/run/docker.sock tcp://127.0.0.2:2375): xdist worker N runs its stack on "
        "engine N modulo their number; without xdist the first is used (default: the engine "
        "DOCKER_HOST or the docker context names)",
        ini_type="args",
    ),
    "target": Option(
        "--e2e-target",
        "e2e_target",
        "TARGET",
        "a TOML file describing a deployment that is already running (see e2e_stack.target): "
        "tests marked operational run against it, the others that use the stack are "
        "deselected, and nothing is started, stopped or removed",
    ),
}


def add_options(parser: pytest.Parser) -> None:
    """Register every setting as a flag and an ini key (and the env prefix's ini key)."""
    group = parser.getgroup("e2e-stack", "end-to-end stack (docker compose)")
    parser.addini(
        ENV_PREFIX_INI,
        f"prefix of the environment variables that set these options (default "
        f"{DEFAULT_ENV_PREFIX}: {DEFAULT_ENV_PREFIX}_PROFILE, ...)",
        default="",
    )
    for ini, help_text, default in HINTS.values():
        parser.addini(ini, f"{help_text} (default: {default})", default="")
    for name, opt in OPTIONS.items():
        where = f"[env <prefix>_{opt.env}, ini {opt.ini}]"
        if opt.is_flag:
            group.addoption(
                opt.flag,
                action="store_true",
                default=None,
                dest=f"e2e_{name}",
                help=f"{opt.help} {where}",
            )
            parser.addini(opt.ini, opt.help, type="bool", default=False)
        else:
            group.addoption(opt.flag, default=None, dest=f"e2e_{name}", help=f"{opt.help} {where}")
            if opt.ini_type == "args":
                parser.addini(opt.ini, opt.help, type="args", default=[])
            else:
                parser.addini(opt.ini, opt.help, default="")


# pytest prints a UsageError as one line and exits: exactly what a bad option value needs.
SettingsError = pytest.UsageError


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no")


def _words(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(shlex.split(value))
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class EngineChoice:
    """One engine of --e2e-engines: its endpoint, and the address its stacks publish on."""

    endpoint: str
    publish_address: str | None = None

    @classmethod
    def parse(cls, word: str) -> EngineChoice:
        """`tcp://host:2376=10.0.0.5` or `unix:///var/run/docker.sock`."""
        endpoint, _, address = word.partition("=")
        if not _ENDPOINT.match(endpoint):
            raise SettingsError(
                f"--e2e-engines entry {word!r} is not an engine endpoint: use unix:///path, "
                "tcp://host:port or ssh://user@host, optionally =PUBLISH_ADDRESS"
            )
        return cls(endpoint, _ip_address("--e2e-engines", address) if address else None)

    def __str__(self) -> str:
        """The entry as `parse` reads it."""
        return f"{self.endpoint}={self.publish_address}" if self.publish_address else self.endpoint


def engine_for(worker: str | None, choices: tuple[EngineChoice, ...]) -> EngineChoice | None:
    """The engine of xdist worker `gwN` (N modulo their number), the first one without xdist."""
    if not choices:
        return None
    index = int(worker[2:]) if worker and worker[2:].isdigit() else 0
    return choices[index % len(choices)]


def _ip_address(what: str, value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise SettingsError(
            f"{what} {value!r} is not an IP address: Docker publishes ports on an address, "
            "not a name (e.g. 127.0.0.1 or 10.0.0.5)"
        ) from None
    return value


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one session."""

    compose_files: tuple[Path, ...]
    profiles: tuple[str, ...]
    """Growth order as configured; empty means: derive it from the compose files."""
    profile: str | None
    """The profile to start with; None means the smallest."""
    project_prefix: str
    label_namespace: str
    keep: bool
    reuse: bool
    artifacts: Path
    cpus: float | None
    publish_address: str | None = None
    """Named by the user; None means: derive it from the engine's endpoint."""
    engines: tuple[EngineChoice, ...] = ()
    """Engines to spread xdist workers' stacks over; empty means the current engine."""
    target: Path | None = None
    """A running deployment's description: test it, start nothing (see e2e_stack.target)."""
    env_prefix: str = DEFAULT_ENV_PREFIX
    engine_hint: str = HINTS["engine_hint"][2]
    images_hint: str = HINTS["images_hint"][2]

    def env_name(self, suffix: str) -> str:
        """The environment variable `<prefix>_<suffix>`."""
        return f"{self.env_prefix}_{suffix}"

    @classmethod
    def resolve(
        cls,
        flags: Mapping[str, Any],
        ini: Mapping[str, Any],
        env: Mapping[str, str],
        rootpath: Path,
        env_prefix: str = "",
        hints: Mapping[str, str] | None = None,
    ) -> Settings:
        """Combine the three sources; pure, so the precedence is unit-tested."""
        prefix = env_prefix.strip() or DEFAULT_ENV_PREFIX

        def pick(name: str) -> Any:
            opt = OPTIONS[name]
            variable = f"{prefix}_{opt.env}"
            if flags.get(name) is not None:
                return flags[name]
            if variable in env:
                return _parse_bool(variable, env[variable]) if opt.is_flag else env[variable]
            return ini.get(name) or None

        files = _words(pick("compose_files")) or DEFAULT_COMPOSE_FILES
        compose_files = tuple(
            path if path.is_absolute() else rootpath / path for path in map(Path, files)
        )
        project_prefix = str(pick("project_prefix") or DEFAULT_PROJECT_PREFIX)
        if not _PROJECT_NAME.match(project_prefix):
            raise SettingsError(
                f"--e2e-project-prefix {project_prefix!r} cannot start a compose project name: "
                "use lowercase letters, digits, '-' and '_'"
            )
        namespace = str(pick("label_namespace") or DEFAULT_LABEL_NAMESPACE)
        if not _LABEL_NAMESPACE.match(namespace):
            raise SettingsError(
                f"--e2e-label-namespace {namespace!r} is not a label namespace: use a "
                "lowercase reverse-DNS name such as org.example.e2e"
            )
        reuse = bool(pick("reuse"))
        if reuse:
            gate = f"{prefix}_GATE"
            for var, why in (("CI", "under CI"), (gate, "in the pre-release gate")):
                if env.get(var, "").strip().lower() in _TRUE:
                    raise SettingsError(
                        f"--e2e-reuse is refused {why} ({var} is set): a reused stack may hold "
                        "data of earlier runs; drop the option (or the variable) to run fresh"
                    )
        artifacts = Path(str(pick("artifacts") or DEFAULT_ARTIFACTS))
        if not artifacts.is_absolute():
            artifacts = rootpath / artifacts
        cpus_text = pick("cpus")
        try:
            cpus = float(cpus_text) if cpus_text not in (None, "") else None
        except ValueError:
            cpus = -1.0
        if cpus is not None and not 0 < cpus < float("inf"):
            raise SettingsError(
                f"--e2e-cpus {cpus_text!r} is not a positive number of cores (e.g. 1 or 1.5)"
            )
        publish_address = str(pick("publish_address") or "").strip() or None
        if publish_address is not None:
            _ip_address("--e2e-publish-address", publish_address)
        engines = tuple(EngineChoice.parse(word) for word in _words(pick("engines")))
        target_text = str(pick("target") or "").strip()
        target = Path(target_text) if target_text else None
        if target is not None and not target.is_absolute():
            target = rootpath / target
        if target is not None and (reuse or bool(pick("keep")) or engines):
            raise SettingsError(
                "--e2e-target tests a deployment that is already running: it cannot be "
                "combined with --e2e-keep, --e2e-reuse or --e2e-engines, which start stacks"
            )
        return cls(
            compose_files=compose_files,
            profiles=_words(pick("profiles")),
            profile=str(pick("profile")) if pick("profile") else None,
            project_prefix=project_prefix,
            label_namespace=namespace,
            keep=bool(pick("keep")) or reuse,
            reuse=reuse,
            artifacts=artifacts,
            cpus=cpus,
            publish_address=publish_address,
            engines=engines,
            target=target,
            env_prefix=prefix,
            **{name: (hints or {}).get(name) or default for name, (_, _, default) in HINTS.items()},
        )

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Resolve from a pytest config and this process's environment."""
        flags = {name: config.getoption(f"e2e_{name}") for name in OPTIONS}
        ini = {name: config.getini(opt.ini) for name, opt in OPTIONS.items()}
        hints = {name: str(config.getini(ini)) for name, (ini, _, _) in HINTS.items()}
        return cls.resolve(
            flags, ini, os.environ, config.rootpath, str(config.getini(ENV_PREFIX_INI)), hints
        )
