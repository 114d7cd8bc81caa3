"""The E2E layer's logic that needs no Docker: options, naming, sweep, redaction, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.plugin import selects_e2e
from tests.e2e.utils.compose_project import engine_host, labels_overlay
from tests.e2e.utils.diagnostics import bundle_dir
from tests.e2e.utils.options import E2EOptions
from tests.e2e.utils.preflight import PortPin, PreflightError, check_ports, pinned_ports
from tests.e2e.utils.readiness import (
    CompletesSuccessfully,
    ContainerState,
    HealthcheckPasses,
    KeepsRunning,
    Verdict,
    deadline_for,
    strategies,
)
from tests.e2e.utils.redact import MASK, Redactor, secrets_in
from tests.e2e.utils.report import ServiceRow, format_table, rows_for
from tests.e2e.utils.run_identity import LABEL_KEEP, PROJECT_PREFIX, RunIdentity
from tests.e2e.utils.sweep import COMPOSE_PROJECT_LABEL, Resource, judge

ROOT = Path("/repo")


def _resolve(
    flags: dict[str, Any] | None = None,
    ini: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> E2EOptions:
    return E2EOptions.resolve(flags or {}, ini or {}, env or {}, ROOT)


# -- options ------------------------------------------------------------------------------


def test_option_defaults() -> None:
    options = _resolve()
    assert options == E2EOptions(
        "minimal", keep=False, reuse=False, artifacts=ROOT / "e2e-artifacts"
    )


def test_flag_beats_env_beats_ini() -> None:
    assert (
        _resolve({"profile": "full"}, {"profile": "minimal"}, {"K2_E2E_PROFILE": "minimal"}).profile
        == "full"
    )
    assert _resolve({}, {"profile": "minimal"}, {"K2_E2E_PROFILE": "full"}).profile == "full"
    assert _resolve({}, {"profile": "full"}, {}).profile == "full"
    assert _resolve({}, {}, {"K2_E2E_KEEP": "yes"}).keep is True
    assert _resolve({"keep": None}, {"keep": True}, {}).keep is True


def test_freshness_slo_defaults_to_5s_and_reads_flag_env_ini() -> None:
    assert _resolve().freshness_slo_s == 5.0
    assert _resolve({}, {"freshness_slo": "4"}, {}).freshness_slo_s == 4.0
    assert (
        _resolve({}, {"freshness_slo": "4"}, {"K2_E2E_FRESHNESS_SLO_S": "3"}).freshness_slo_s == 3
    )
    assert _resolve({"freshness_slo": "2.5"}, {}, {}).freshness_slo_s == 2.5


def test_artifacts_relative_to_root_unless_absolute() -> None:
    assert _resolve({"artifacts": "out"}).artifacts == ROOT / "out"
    assert _resolve({}, {}, {"K2_E2E_ARTIFACTS": "/abs/a"}).artifacts == Path("/abs/a")


@pytest.mark.parametrize(
    ("markexpr", "selected"),
    [
        ("e2e", True),
        ("e2e and not slow", True),
        ("not slow and not chaos and not soak and not operational and not e2e", False),
        ("", False),
        ("slow", False),
    ],
)
def test_only_an_e2e_selection_clears_the_previous_reports(markexpr: str, selected: bool) -> None:
    assert selects_e2e(markexpr) is selected


def test_reuse_implies_keep() -> None:
    options = _resolve({"reuse": True})
    assert options.reuse
    assert options.keep


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"profile": "huge"}, {}, "not a profile"),
        ({}, {"K2_E2E_KEEP": "maybe"}, "not a boolean"),
        ({"reuse": True}, {"CI": "true"}, "refused under CI"),
        ({"reuse": True}, {"K2_E2E_GATE": "1"}, "refused in the pre-release gate"),
        ({"freshness_slo": "soon"}, {}, "not a positive number of seconds"),
        ({}, {"K2_E2E_FRESHNESS_SLO_S": "0"}, "not a positive number of seconds"),
        ({"freshness_slo": "inf"}, {}, "not a positive number of seconds"),
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
    assert a.project_name() != b.project_name()
    assert a.project_name().startswith(f"{PROJECT_PREFIX}-")
    assert a.project_name("gw0") != a.project_name("gw1")
    assert a.project_name("gw0").endswith("-gw0")


def test_identity_round_trips_through_labels() -> None:
    me = RunIdentity.current()
    assert RunIdentity.from_labels(me.labels()) == RunIdentity(
        me.run_id, me.pid, me.pid_start, me.host, float(f"{me.started_at:.0f}")
    )
    assert RunIdentity.from_labels({"com.docker.compose.project": "x"}) is None


def test_labels_overlay_covers_services_networks_volumes() -> None:
    model: dict[str, Any] = {"services": {"a": {}, "b": {}}, "volumes": {"data": {}}}
    overlay = labels_overlay(model, {"k": "v"})
    assert overlay["services"] == {"a": {"labels": {"k": "v"}}, "b": {"labels": {"k": "v"}}}
    assert overlay["networks"] == {"default": {"labels": {"k": "v"}}}
    assert overlay["volumes"] == {"data": {"labels": {"k": "v"}}}


@pytest.mark.parametrize(
    ("env", "host"),
    [
        ({"DOCKER_HOST": "tcp://10.1.2.3:2376"}, "10.1.2.3"),
        ({"DOCKER_HOST": "ssh://ci@build-box"}, "build-box"),
        ({"DOCKER_HOST": "unix:///var/run/docker.sock"}, "127.0.0.1"),
    ],
)
def test_engine_host_follows_docker_host(env: dict[str, str], host: str) -> None:
    assert engine_host(env) == host


# -- sweep ---------------------------------------------------------------------------------


def _resources(project: str, labels: dict[str, str]) -> list[Resource]:
    full = {COMPOSE_PROJECT_LABEL: project, **labels}
    return [
        Resource("container", f"{project}-c", full),
        Resource("network", f"{project}-n", full),
        Resource("volume", f"{project}-v", full),
    ]


def _owner(pid: int, host: str = "here") -> dict[str, str]:
    return RunIdentity("run1", pid, "123", host, 1.0).labels()


def test_sweep_removes_only_dead_runs_of_ours_on_this_host() -> None:
    dead = _resources(f"{PROJECT_PREFIX}-dead", _owner(11))
    live = _resources(f"{PROJECT_PREFIX}-live", _owner(22))
    kept = _resources(f"{PROJECT_PREFIX}-kept", {**_owner(11), LABEL_KEEP: "true"})
    remote = _resources(f"{PROJECT_PREFIX}-remote", _owner(11, host="elsewhere"))
    unlabelled = _resources(f"{PROJECT_PREFIX}-manual", {})
    foreign = _resources("k2", _owner(11))
    verdicts = judge(
        [*dead, *live, *kept, *remote, *unlabelled, *foreign],
        host="here",
        alive=lambda pid, _start: pid == 22,
    )
    by_project = {v.project: v for v in verdicts}
    assert "k2" not in by_project, "a project without our prefix is never even considered"
    assert [v.project for v in verdicts if v.remove] == [f"{PROJECT_PREFIX}-dead"]
    assert len(by_project[f"{PROJECT_PREFIX}-dead"].resources) == 3
    assert "still alive" in by_project[f"{PROJECT_PREFIX}-live"].reason
    assert "kept" in by_project[f"{PROJECT_PREFIX}-kept"].reason
    assert "elsewhere" in by_project[f"{PROJECT_PREFIX}-remote"].reason
    assert "no run labels" in by_project[f"{PROJECT_PREFIX}-manual"].reason


def test_sweep_finds_a_dead_run_from_its_leftover_volume_alone() -> None:
    [volume] = [r for r in _resources(f"{PROJECT_PREFIX}-x", _owner(5)) if r.kind == "volume"]
    [verdict] = judge([volume], host="here", alive=lambda *_: False)
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
    redact = Redactor({"hunter22", "k2"}).add("k2-dev-api-key-2026")
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
    running = KeepsRunning()
    assert running.judge(_state("created"))[0] is Verdict.WAITING
    assert running.judge(_state("running"))[0] is Verdict.READY


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
    check_ports([PortPin("K2_MINIO_PORT", 19000)], is_free=lambda _port: True)
    with pytest.raises(PreflightError, match=r"19000 \(K2_MINIO_PORT\) is already in use"):
        check_ports([PortPin("K2_MINIO_PORT", 19000)], is_free=lambda _port: False)
