"""The e2e_stack plugin's logic that needs no Docker: settings, carrier, naming, sweep."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from e2e_stack.bundles import bundle_dir
from e2e_stack.engine import COMPOSE_PROJECT_LABEL, ComposeBinding, Resource, host_of_endpoint
from e2e_stack.identity import LabelKeys, RunIdentity
from e2e_stack.manager import NO_PROFILE, StackManager, growth_order, reachable_profiles
from e2e_stack.plugin import _on_own_engine
from e2e_stack.preflight import (
    PortPin,
    PreflightError,
    check_images,
    check_ports,
    pinned_ports,
    publish_address,
)
from e2e_stack.project import CommandError, ComposeCommand, ComposeProject, labels_overlay
from e2e_stack.readiness import (
    CompletesSuccessfully,
    ContainerState,
    HealthcheckPasses,
    KeepsRunning,
    Recovering,
    Verdict,
    deadline_for,
    strategies,
)
from e2e_stack.redact import MASK, Redactor, secrets_in
from e2e_stack.settings import EngineChoice, Settings, engine_for
from e2e_stack.summary import ServiceRow, format_table, rows_for
from e2e_stack.sweep import judge, remove_run
from tests.e2e.k2_plugin import freshness_slo

ROOT = Path("/repo")
PREFIX = "demo"
KEYS = LabelKeys("org.example.e2e")


def _resolve(
    flags: dict[str, Any] | None = None,
    ini: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    return Settings.resolve(flags or {}, ini or {}, env or {}, ROOT, "K2_E2E")


# -- the plugin as installed ---------------------------------------------------------------


def test_installed_plugin_offers_its_options_without_any_conftest(tmp_path: Path) -> None:
    """The pytest11 entry point alone registers it: a bare directory, no conftest, no ini."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--e2e-compose-files", "--e2e-profile", "--e2e-keep", "--e2e-cpus"):
        assert option in proc.stdout
    assert "--e2e-freshness-slo" not in proc.stdout, "K2's own option leaked into the plugin"


PROJECT = Path(__file__).resolve().parents[2]
SMALL_MODULE = "tests/unit/test_feed_pacing.py"


@pytest.mark.parametrize("flag", ["--e2e-artifacts", "--e2e-target"])
def test_a_path_option_as_a_separate_word_is_refused_naming_the_spelling(
    tmp_path: Path, flag: str
) -> None:
    """Else pytest takes the path for a test path too, and loses the project's configuration."""
    value = tmp_path
    if flag == "--e2e-target":
        value = tmp_path / "target.toml"
        value.touch()
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    separate = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", flag, str(value)],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert separate.returncode == pytest.ExitCode.USAGE_ERROR, separate.stdout
    assert f"write {flag}={value} (with '=')" in separate.stderr
    pytest_cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q"]
    joined = subprocess.run(
        [*pytest_cmd, f"--e2e-artifacts={tmp_path}", SMALL_MODULE],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert joined.returncode == pytest.ExitCode.OK, joined.stdout + joined.stderr


# -- settings -----------------------------------------------------------------------------


def test_settings_defaults() -> None:
    settings = Settings.resolve({}, {}, {}, ROOT)
    assert settings.compose_files == (ROOT / "docker-compose.yml",)
    assert settings.profile is None
    assert settings.profiles == ()
    assert (settings.project_prefix, settings.label_namespace) == ("e2e", "io.e2e-stack")
    assert (settings.keep, settings.reuse, settings.cpus) == (False, False, None)
    assert settings.artifacts == ROOT / "e2e-artifacts"
    assert settings.env_name("PROFILE") == "E2E_STACK_PROFILE"


def test_flag_beats_env_beats_ini() -> None:
    assert (
        _resolve({"profile": "full"}, {"profile": "minimal"}, {"K2_E2E_PROFILE": "minimal"}).profile
        == "full"
    )
    assert _resolve({}, {"profile": "minimal"}, {"K2_E2E_PROFILE": "full"}).profile == "full"
    assert _resolve({}, {"profile": "full"}, {}).profile == "full"
    assert _resolve({}, {}, {"K2_E2E_KEEP": "yes"}).keep is True
    assert _resolve({"keep": None}, {"keep": True}, {}).keep is True


def test_env_names_follow_the_configured_prefix() -> None:
    assert _resolve({}, {}, {"E2E_STACK_PROFILE": "full"}).profile is None
    other = Settings.resolve({}, {}, {"DEMO_PROFILE": "big"}, ROOT, "DEMO")
    assert other.profile == "big"


def test_compose_files_and_profiles_are_lists_relative_to_the_root() -> None:
    settings = _resolve({}, {"compose_files": ["a.yml", "/abs/b.yml"], "profiles": ["s", "l"]})
    assert settings.compose_files == (ROOT / "a.yml", Path("/abs/b.yml"))
    assert settings.profiles == ("s", "l")
    assert _resolve({}, {}, {"K2_E2E_COMPOSE_FILES": "x.yml 'y z.yml'"}).compose_files == (
        ROOT / "x.yml",
        ROOT / "y z.yml",
    )


def test_artifacts_relative_to_root_unless_absolute() -> None:
    assert _resolve({"artifacts": "out"}).artifacts == ROOT / "out"
    assert _resolve({}, {}, {"K2_E2E_ARTIFACTS": "/abs/a"}).artifacts == Path("/abs/a")


def test_freshness_slo_defaults_to_5s_and_reads_flag_env_ini() -> None:
    assert freshness_slo(None, {}, "") == 5.0
    assert freshness_slo(None, {}, "4") == 4.0
    assert freshness_slo(None, {"K2_E2E_FRESHNESS_SLO_S": "3"}, "4") == 3.0
    assert freshness_slo("2.5", {"K2_E2E_FRESHNESS_SLO_S": "3"}, "") == 2.5
    for bad in ("soon", "0", "inf"):
        with pytest.raises(pytest.UsageError, match="not a positive number of seconds"):
            freshness_slo(bad, {}, "")


def test_reuse_implies_keep() -> None:
    options = _resolve({"reuse": True})
    assert options.reuse
    assert options.keep


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({}, {"K2_E2E_KEEP": "maybe"}, "not a boolean"),
        ({"reuse": True}, {"CI": "true"}, "refused under CI"),
        ({"reuse": True}, {"K2_E2E_GATE": "1"}, "refused in the pre-release gate"),
        ({"cpus": "fast"}, {}, "not a positive number of cores"),
        ({"project_prefix": "My Stack"}, {}, "cannot start a compose project name"),
        ({"label_namespace": "Org/Example"}, {}, "is not a label namespace"),
        ({}, {"K2_E2E_PUBLISH_ADDRESS": "build-box"}, "is not an IP address"),
        ({"engines": "build-box:2376"}, {}, "is not an engine endpoint"),
        ({"engines": "tcp://build-box:2376=box"}, {}, "is not an IP address"),
    ],
)
def test_bad_options_fail_with_one_line(
    flags: dict[str, Any], env: dict[str, str], message: str
) -> None:
    with pytest.raises(pytest.UsageError, match=message):
        _resolve(flags, {}, env)


# -- naming and labels ---------------------------------------------------------------------


def test_project_names_are_unique_per_run_and_worker() -> None:
    a, b = RunIdentity.current(), RunIdentity.current()
    assert a.project_name(PREFIX) != b.project_name(PREFIX)
    assert a.project_name(PREFIX).startswith(f"{PREFIX}-")
    assert a.project_name(PREFIX, "gw0") != a.project_name(PREFIX, "gw1")
    assert a.project_name(PREFIX, "gw0").endswith("-gw0")
    assert RunIdentity.current("abc").run_id == "abc"


def test_identity_round_trips_through_labels_of_its_namespace() -> None:
    me = RunIdentity.current()
    labels = me.labels(KEYS)
    assert all(key.startswith("org.example.e2e.") for key in labels)
    assert RunIdentity.from_labels(labels, KEYS) == RunIdentity(
        me.run_id, me.pid, me.pid_start, me.host, float(f"{me.started_at:.0f}")
    )
    assert RunIdentity.from_labels(labels, LabelKeys("other.ns")) is None
    assert RunIdentity.from_labels({"com.docker.compose.project": "x"}, KEYS) is None


def test_labels_overlay_covers_services_networks_volumes() -> None:
    model: dict[str, Any] = {"services": {"a": {}, "b": {}}, "volumes": {"data": {}}}
    overlay = labels_overlay(model, {"k": "v"})
    assert overlay["services"] == {"a": {"labels": {"k": "v"}}, "b": {"labels": {"k": "v"}}}
    assert overlay["networks"] == {"default": {"labels": {"k": "v"}}}
    assert overlay["volumes"] == {"data": {"labels": {"k": "v"}}}


def test_overlay_labels_reads_back_what_labels_overlay_wrote(tmp_path: Path) -> None:
    from e2e_stack.project import overlay_labels, write_overlay

    model: dict[str, Any] = {"services": {"a": {}, "b": {}}}
    path = write_overlay(tmp_path / "labels.json", labels_overlay(model, {"k": "v"}, "/cg"))
    assert overlay_labels(path) == {"k": "v"}
    assert overlay_labels(tmp_path / "absent.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert overlay_labels(tmp_path / "bad.json") is None


@pytest.mark.parametrize(
    ("env", "host"),
    [
        ({"DOCKER_HOST": "tcp://10.1.2.3:2376"}, "10.1.2.3"),
        ({"DOCKER_HOST": "ssh://ci@build-box"}, "build-box"),
        ({"DOCKER_HOST": "unix:///var/run/docker.sock"}, "127.0.0.1"),
    ],
)
def test_engine_address_follows_docker_host(env: dict[str, str], host: str) -> None:
    assert host_of_endpoint(env["DOCKER_HOST"]) == host


def test_each_xdist_worker_gets_an_engine_of_the_list_in_turn() -> None:
    settings = _resolve(
        env={"K2_E2E_ENGINES": "unix:///var/run/docker.sock tcp://build-box:2376=10.0.0.5"}
    )
    local, remote = settings.engines
    assert local == EngineChoice("unix:///var/run/docker.sock")
    assert remote == EngineChoice("tcp://build-box:2376", "10.0.0.5")
    picks = [engine_for(worker, settings.engines) for worker in (None, "gw0", "gw1", "gw2")]
    assert picks == [local, local, remote, local]
    assert engine_for("gw3", ()) is None


def test_a_worker_and_the_sessions_it_starts_use_its_engine_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed = "unix:///var/run/docker.sock tcp://build-box:2376=10.0.0.5"
    monkeypatch.setenv("K2_E2E_ENGINES", listed)
    monkeypatch.setenv("DOCKER_CONTEXT", "elsewhere")
    monkeypatch.delenv("DOCKER_HOST", raising=False)  # restored after the test
    settings = _on_own_engine(_resolve(env={"K2_E2E_ENGINES": listed}), "gw1")
    assert settings.publish_address == "10.0.0.5"
    assert os.environ["DOCKER_HOST"] == "tcp://build-box:2376"
    assert "DOCKER_CONTEXT" not in os.environ
    # A nested session (no worker id) reads the environment this worker leaves.
    nested = _resolve(env={"K2_E2E_ENGINES": os.environ["K2_E2E_ENGINES"]})
    assert nested.engines == (EngineChoice("tcp://build-box:2376", "10.0.0.5"),)
    # The controller (no worker id) keeps the whole list for the workers it starts.
    monkeypatch.setenv("K2_E2E_ENGINES", listed)
    _on_own_engine(_resolve(env={"K2_E2E_ENGINES": listed}), None)
    assert os.environ["K2_E2E_ENGINES"] == listed


def test_publish_address_is_a_setting_read_from_flag_env_and_ini() -> None:
    assert _resolve().publish_address is None
    assert _resolve(env={"K2_E2E_PUBLISH_ADDRESS": "10.0.0.5"}).publish_address == "10.0.0.5"
    assert _resolve(ini={"publish_address": "::1"}).publish_address == "::1"


@pytest.mark.parametrize(
    ("endpoint", "named", "address"),
    [
        ("", None, "127.0.0.1"),
        ("unix:///var/run/docker.sock", None, "127.0.0.1"),
        ("tcp://127.0.0.2:2375", None, "127.0.0.2"),
        ("tcp://10.1.2.3:2376", "10.1.2.3", "10.1.2.3"),
        ("ssh://ci@build-box", "10.9.8.7", "10.9.8.7"),
        ("unix:///var/run/docker.sock", "127.0.0.3", "127.0.0.3"),
    ],
)
def test_ports_are_published_on_loopback_unless_the_engine_or_the_user_says(
    endpoint: str, named: str | None, address: str
) -> None:
    assert publish_address(endpoint, named, "--e2e-publish-address") == address


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("tcp://10.1.2.3:2376", "10.1.2.3 is another machine"),
        ("tcp://build-box:2376", "build-box is another machine"),
        ("ssh://ci@build-box", "ssh:// forwards the engine's API, not the stack's ports"),
    ],
)
def test_a_remote_engine_needs_the_user_to_name_the_publish_address(
    endpoint: str, why: str
) -> None:
    with pytest.raises(PreflightError) as refused:
        publish_address(endpoint, None, "--e2e-publish-address")
    message = str(refused.value)
    assert why in message
    assert "set --e2e-publish-address to an address of its host" in message


# -- sweep ---------------------------------------------------------------------------------


def _resources(project: str, labels: dict[str, str]) -> list[Resource]:
    full = {COMPOSE_PROJECT_LABEL: project, **labels}
    return [
        Resource("container", f"{project}-c", full),
        Resource("network", f"{project}-n", full),
        Resource("volume", f"{project}-v", full),
    ]


def _owner(pid: int, host: str = "here") -> dict[str, str]:
    return RunIdentity("run1", pid, "123", host, 1.0).labels(KEYS)


def test_sweep_removes_only_dead_runs_of_ours_on_this_host() -> None:
    dead = _resources(f"{PREFIX}-dead", _owner(11))
    live = _resources(f"{PREFIX}-live", _owner(22))
    kept = _resources(f"{PREFIX}-kept", {**_owner(11), KEYS.keep: "true"})
    remote = _resources(f"{PREFIX}-remote", _owner(11, host="elsewhere"))
    unlabelled = _resources(f"{PREFIX}-manual", {})
    foreign = _resources("other", _owner(11))
    verdicts = judge(
        [*dead, *live, *kept, *remote, *unlabelled, *foreign],
        host="here",
        prefix=PREFIX,
        keys=KEYS,
        alive=lambda pid, _start: pid == 22,
    )
    by_project = {v.project: v for v in verdicts}
    assert "other" not in by_project, "a project without our prefix is never even considered"
    assert [v.project for v in verdicts if v.remove] == [f"{PREFIX}-dead"]
    assert len(by_project[f"{PREFIX}-dead"].resources) == 3
    assert "still alive" in by_project[f"{PREFIX}-live"].reason
    assert "kept" in by_project[f"{PREFIX}-kept"].reason
    assert "elsewhere" in by_project[f"{PREFIX}-remote"].reason
    assert "no run labels" in by_project[f"{PREFIX}-manual"].reason


class _FakeEngine:
    def __init__(self, resources: list[Resource]) -> None:
        self.held = resources
        self.removed: list[Resource] = []

    def resources(self) -> list[Resource]:
        return self.held

    def remove(self, resources: list[Resource]) -> None:
        self.removed += resources


def test_the_xdist_controller_removes_its_workers_leftovers_and_nothing_else() -> None:
    ours = RunIdentity("run1", 11, "1", "here", 1.0).labels(KEYS)
    other_run = RunIdentity("run2", 12, "1", "here", 1.0).labels(KEYS)
    kept = {**ours, KEYS.keep: "true"}
    engine = _FakeEngine(
        _resources(f"{PREFIX}-run1-gw0", ours)
        + _resources(f"{PREFIX}-run1-gw1", kept)
        + _resources(f"{PREFIX}-run2-gw0", other_run)
        + _resources("someone-else", ours)
    )
    removed = remove_run(engine, "run1", PREFIX, KEYS)  # type: ignore[arg-type]
    assert removed == [f"{PREFIX}-run1-gw0"]
    assert {r.project for r in engine.removed} == {f"{PREFIX}-run1-gw0"}
    assert len(engine.removed) == 3


def test_sweep_finds_a_dead_run_from_its_leftover_volume_alone() -> None:
    [volume] = [r for r in _resources(f"{PREFIX}-x", _owner(5)) if r.kind == "volume"]
    [verdict] = judge([volume], host="here", prefix=PREFIX, keys=KEYS, alive=lambda *_: False)
    assert verdict.remove


# -- redaction -----------------------------------------------------------------------------


def test_secrets_come_from_secret_named_variables() -> None:
    model = {
        "services": {
            "db": {"environment": {"POSTGRES_PASSWORD": "hunter22", "POSTGRES_USER": "k2"}},
            "api": {"environment": {"K2_API_KEY": "k2-dev-api-key-2026", "PORT": "8000"}},
            "s3": {"environment": {"MINIO_ROOT_PASSWORD": "minio-secret"}},
        }
    }
    assert secrets_in(model) == {"hunter22", "k2-dev-api-key-2026", "minio-secret"}


def test_redactor_masks_values_and_secret_assignments() -> None:
    redact = Redactor({"hunter22", "k2", "k2-dev-api-key-2026"})
    text = (
        "password hunter22 used; key=k2-dev-api-key-2026; "
        "X-Api-Key: abc123 AWS_SECRET_ACCESS_KEY='zzz' user k2 ok"
    )
    out = redact(text)
    for secret in ("hunter22", "k2-dev-api-key-2026", "abc123", "zzz"):
        assert secret not in out
    assert out.count(MASK) == 4
    assert "user k2 ok" in out, "short values are not secrets worth shredding logs for"


# -- report --------------------------------------------------------------------------------


def test_summary_table_is_aligned_and_ordered_by_ready_time() -> None:
    rows = rows_for(
        "p", {"kafka": 12.34, "postgres": 3.0}, {"kafka": (150.0, 300.4), "minio": (2.0, 50.0)}
    )
    assert rows[0] == ServiceRow("p", "kafka", 12.34, 150.0, 300.4)
    lines = format_table(rows)
    assert lines[0].split() == [
        "stack",
        "service",
        "ready",
        "s",
        "peak",
        "cpu",
        "%",
        "peak",
        "mem",
        "MiB",
    ]
    assert [line.split()[1] for line in lines[1:]] == ["postgres", "kafka", "minio"]
    assert lines[2].split()[2:] == ["12.3", "150", "300"]
    assert lines[3].split()[2] == "-"
    assert len({len(line) for line in lines[:3]}) == 1
    assert format_table([]) == []


def test_bundle_dir_is_filesystem_safe() -> None:
    path = bundle_dir(Path("/a"), "tests/e2e/test_x.py::test_y[kafka-1]")
    assert path == Path("/a/failures/tests_e2e_test_x.py_test_y_kafka-1")


# -- readiness -----------------------------------------------------------------------------


def _state(status: str, health: str | None = None, code: int = 0) -> ContainerState:
    return ContainerState("svc", "c1", status, health, code)


def test_readiness_strategies_judge_states() -> None:
    healthy = HealthcheckPasses()
    assert healthy.judge(_state("running", "starting"))[0] is Verdict.WAITING
    assert healthy.judge(_state("running", "healthy"))[0] is Verdict.READY
    assert healthy.judge(_state("running", "unhealthy"))[0] is Verdict.FAILED
    verdict, reason = healthy.judge(_state("exited", "starting", 137))
    assert verdict is Verdict.FAILED
    assert "exited (137)" in reason
    once = CompletesSuccessfully()
    assert once.judge(_state("running"))[0] is Verdict.WAITING
    assert once.judge(_state("exited", code=0))[0] is Verdict.READY
    assert once.judge(_state("exited", code=1))[0] is Verdict.FAILED
    recovering = Recovering(healthy, since=100.0)
    probed = dataclasses.replace(_state("running", "healthy"), health_checked_at=101.0)
    stale = dataclasses.replace(probed, health_checked_at=99.0)
    assert recovering.judge(probed)[0] is Verdict.READY
    assert recovering.judge(stale)[0] is Verdict.WAITING, "a probe from before the fault"
    assert recovering.judge(_state("running", "healthy"))[0] is Verdict.WAITING
    assert recovering.judge(dataclasses.replace(probed, health="unhealthy"))[0] is Verdict.WAITING
    assert recovering.judge(_state("exited", "unhealthy", 1))[0] is Verdict.FAILED
    assert Recovering(KeepsRunning(), 100.0).judge(_state("running"))[0] is Verdict.READY
    running = KeepsRunning()
    assert running.judge(_state("created"))[0] is Verdict.WAITING
    assert running.judge(_state("running"))[0] is Verdict.READY
    verdict, reason = running.judge(_state("exited", code=0))
    assert verdict is Verdict.FAILED, "an exit is a crash unless a dependant awaits completion"
    assert "service_completed_successfully" in reason


def test_a_container_its_restart_policy_brings_back_has_failed_unless_a_fault_ended() -> None:
    """Its process died (a crash loop looks the same); after a fault, the restart is awaited."""
    restarting = _state("restarting", "unhealthy", 3)
    for strategy in (HealthcheckPasses(), KeepsRunning(), CompletesSuccessfully()):
        verdict, reason = strategy.judge(restarting)
        assert verdict is Verdict.FAILED, strategy
        assert "restarting (exited 3)" in reason
    assert CompletesSuccessfully().judge(_state("restarting", code=0))[0] is Verdict.FAILED
    assert Recovering(HealthcheckPasses(), 100.0).judge(restarting)[0] is Verdict.WAITING


def test_strategies_and_deadlines_come_from_the_compose_model() -> None:
    model: dict[str, Any] = {
        "services": {
            "db": {
                "healthcheck": {
                    "test": ["CMD", "true"],
                    "interval": "1s",
                    "timeout": "3s",
                    "retries": 3,
                    "start_period": "1m30s",
                }
            },
            "init": {},
            "app": {"depends_on": {"init": {"condition": "service_completed_successfully"}}},
        }
    }
    chosen = strategies(model)
    assert isinstance(chosen["db"], HealthcheckPasses)
    assert isinstance(chosen["init"], CompletesSuccessfully)
    assert isinstance(chosen["app"], KeepsRunning)
    assert deadline_for(model["services"]["db"]) == 90 + 3 * 4
    assert deadline_for(model["services"]["app"]) == 30.0


# -- preflight -----------------------------------------------------------------------------

COMPOSE_TEXT = """
ports:
  - "127.0.0.1:${K2_MINIO_PORT:-}:9000"
  - "127.0.0.1:${K2_KAFKA_HOST_PORT:-29092}:9094"
  - "127.0.0.1:${K2_POSTGRES_PORT}:5432"
"""


def test_pinned_ports_only_for_variables_set() -> None:
    pins = pinned_ports([COMPOSE_TEXT], {"K2_MINIO_PORT": "19000", "K2_POSTGRES_PORT": ""})
    assert pins == [PortPin("K2_MINIO_PORT", 19000)]
    with pytest.raises(PreflightError, match="K2_MINIO_PORT='nine' is not a port"):
        pinned_ports([COMPOSE_TEXT], {"K2_MINIO_PORT": "nine"})


def test_taken_pinned_port_names_the_variable_and_the_fix() -> None:
    check_ports([PortPin("K2_MINIO_PORT", 19000)], is_free=lambda _port, _host: True)
    with pytest.raises(PreflightError, match=r"19000 \(K2_MINIO_PORT\) is already in use"):
        check_ports([PortPin("K2_MINIO_PORT", 19000)], is_free=lambda _port, _host: False)


def test_pinned_ports_are_checked_on_the_publish_address_where_this_machine_can() -> None:
    asked: list[tuple[int, str]] = []

    def taken(port: int, host: str) -> bool:
        asked.append((port, host))
        return False

    with pytest.raises(PreflightError, match="already in use"):
        check_ports([PortPin("K2_MINIO_PORT", 19000)], is_free=taken, host="127.0.0.2")
    assert asked == [(19000, "127.0.0.2")]
    # 192.0.2.0/24 is documentation-only: never an address of this machine, nothing to check.
    check_ports([PortPin("K2_MINIO_PORT", 19000)], is_free=taken, host="192.0.2.10")
    assert len(asked) == 1


def test_pinned_ports_are_any_variable_named_like_a_port() -> None:
    text = 'ports: ["127.0.0.1:${DB_PORT:-}:5432", "${OTHER:-1}:80"]'
    assert pinned_ports([text], {"DB_PORT": "15432", "OTHER": "2"}) == [PortPin("DB_PORT", 15432)]


# -- the carrier ---------------------------------------------------------------------------


def test_compose_command_is_taken_apart_for_the_cli_and_python_on_whales() -> None:
    command = ComposeCommand.parse('docker compose --env-file "run 1.env" --ansi never', ROOT)
    assert command.client_call == ("docker",)
    assert command.env_files == (ROOT / "run 1.env",)
    assert command.options == ("--env-file", str(ROOT / "run 1.env"), "--ansi", "never")
    wrapped = ComposeCommand.parse("sudo -n docker compose --project-directory=/p", ROOT)
    assert wrapped.client_call == ("sudo", "-n", "docker")
    assert wrapped.project_directory == Path("/p")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("docker-compose", "not compose v2"),
        ("docker compose -p other", "docker_compose_project_name"),
        ("docker compose -f x.yml", "docker_compose_file"),
        ("docker compose --profile big", "e2e_profile"),
        ("docker compose --dry-run", "not understood"),
        ("docker compose --env-file", "needs a value"),
    ],
)
def test_compose_command_refuses_what_would_split_run_from_watch(
    command: str, message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        ComposeCommand.parse(command, ROOT)


def test_project_from_fixtures_calls_compose_with_its_name_files_and_profiles() -> None:
    project = ComposeProject.from_fixtures(
        "docker compose --env-file run.env", "stack.yml", "demo-1", ROOT, profiles=("big",)
    )
    project = project.with_overlay(ROOT / "labels.json")
    binding: ComposeBinding | None = project.engine.binding
    assert binding is not None
    assert binding.argv("up", "-d") == [
        "docker",
        "compose",
        "--env-file",
        str(ROOT / "run.env"),
        "-f",
        str(ROOT / "stack.yml"),
        "-f",
        str(ROOT / "labels.json"),
        "-p",
        "demo-1",
        "--profile",
        "big",
        "up",
        "-d",
    ]


def test_growth_order_follows_the_compose_files() -> None:
    model: dict[str, Any] = {
        "services": {
            "a": {"profiles": ["small", "large"]},
            "b": {"profiles": ["large"]},
            "c": {"profiles": ["large"]},
            "d": {},
        }
    }
    assert growth_order(model) == ("small", "large")
    assert growth_order(model, ["large"]) == ("large",)
    with pytest.raises(ValueError, match="huge"):
        growth_order(model, ["huge"])
    assert growth_order({"services": {"x": {}}}) == (NO_PROFILE,)


GROWING_MODEL: dict[str, Any] = {
    "services": {
        "store": {"image": "demo/store:1", "profiles": ["small", "large"]},
        "api": {"image": "demo/api:1", "profiles": ["large"]},
        "built": {"image": "demo/built:1", "build": {"context": "."}, "profiles": ["large"]},
    }
}


class _ImagesOnly:
    """An engine that holds these image tags, and answers nothing else."""

    def __init__(self, *tags: str) -> None:
        self._tags = set(tags)

    def image_tags(self) -> set[str]:
        return self._tags


def test_preflight_wants_the_images_of_every_profile_the_session_may_grow_to() -> None:
    assert reachable_profiles(GROWING_MODEL, (), None) == ("small", "large")
    assert reachable_profiles(GROWING_MODEL, (), "large") == ("large",)
    with pytest.raises(ValueError, match="'huge' is not in the compose files"):
        reachable_profiles(GROWING_MODEL, (), "huge")
    engine: Any = _ImagesOnly("demo/store:1")
    both: Any = _ImagesOnly("demo/store:1", "demo/api:1")
    # Starting small, the session may grow to `large`: its API image is checked already.
    with pytest.raises(PreflightError, match=r"demo/api:1 missing: run make-images"):
        check_images(engine, GROWING_MODEL, ("small", "large"), "run make-images")
    check_images(engine, GROWING_MODEL, ("small",), "run make-images")
    # An image compose builds itself is not asked for.
    check_images(both, GROWING_MODEL, ("large",), "")


def test_setup_and_cleanup_take_pytest_dockers_string_or_list_forms() -> None:
    project = ComposeProject.from_fixtures("docker compose", "s.yml", "demo-2", ROOT)
    one = StackManager(project, "up -d --build", "", ("p",))
    assert (one._setup, one._cleanup) == (["up -d --build"], [])
    many = StackManager(project, ["up -d", "ps"], ("down -v",), ("p",))
    assert (many._setup, many._cleanup) == (["up -d", "ps"], ["down -v"])


def test_a_kept_stacks_remove_command_also_deletes_its_run_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = ComposeProject.from_fixtures("docker compose", "s.yml", "demo-3", ROOT)
    run_dir = tmp_path / "runs" / "demo 3"
    manager = StackManager(project, "up -d", "down -v", ("p",), keep=True, run_dir=run_dir)
    monkeypatch.setattr(manager, "endpoints", dict)

    remove = next(line for line in manager.how_to_reach().splitlines() if "remove:" in line)

    assert remove.endswith(f"--profile p down -v && rm -rf '{run_dir}'"), remove
    without = StackManager(project, "up -d", "down -v", ("p",), keep=True)
    monkeypatch.setattr(without, "endpoints", dict)
    assert without.how_to_reach().endswith("--profile p down -v")


def test_engine_health_times_are_read_to_the_microsecond() -> None:
    from e2e_stack.engine import _state_of

    row = {
        "State": {
            "Status": "running",
            "Health": {
                "Status": "healthy",
                "Log": [{"End": "2026-12-03T16:25:01.123456789Z", "Output": ""}],
            },
        },
        "Config": {"Labels": {"com.docker.compose.service": "db"}},
    }
    assert _state_of(row).health_checked_at == pytest.approx(1796315101.123456, abs=1e-5)
    assert _state_of({"State": {"Status": "running"}}).health_checked_at is None


def test_a_service_being_recreated_is_judged_by_its_new_container() -> None:
    from e2e_stack.engine import _current, _state_of

    def row(name: str, created: str, status: str) -> dict[str, object]:
        return {
            "Name": f"/{name}",
            "Created": created,
            "State": {"Status": status},
            "Config": {"Labels": {"com.docker.compose.service": "minio"}},
        }

    old = row("5f2c_demo-minio-1", "2026-12-06T09:30:00.5Z", "exited")
    new = row("demo-minio-1", "2026-12-06T09:38:40.123456789Z", "running")
    for rows in ([old, new], [new, old]):
        (current,) = [_state_of(r) for r in _current(rows)]
        assert (current.container, current.status) == ("demo-minio-1", "running")


def test_a_long_health_output_keeps_its_cause_and_its_last_line() -> None:
    from e2e_stack.engine import _HEALTH_OUTPUT_CHARS, _state_of

    cause = "unhealthy: Iceberg commits failing for 2.0 s: OSError: "
    output = cause + "x" * 2000 + "\ncurl: (22) The requested URL returned error: 503"
    row = {
        "State": {
            "Status": "running",
            "Health": {"Status": "unhealthy", "Log": [{"Output": output}]},
        }
    }
    (kept,) = _state_of(row).health_log

    assert kept.startswith(cause)
    assert kept.endswith("returned error: 503")
    assert len(kept) == _HEALTH_OUTPUT_CHARS


def test_loading_the_plugin_leaves_python_on_whales_unloaded() -> None:
    """Starting or reusing a stack needs none of it; loading it costs 0.23 s of each run."""
    code = (
        "import sys, e2e_stack.plugin, e2e_stack.fixtures, tests.e2e.k2_plugin; "
        "print('python_on_whales' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"
