"""External targets: the file, its checks, the setting, and which tests may run against one."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from e2e_stack import StackUnhealthy
from e2e_stack.plugin import target_verdict
from e2e_stack.settings import Settings, SettingsError
from e2e_stack.target import Target, TargetError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "target.toml"
    path.write_text(text)
    return path


def test_target_file_gives_addresses_and_env_with_variables_from_the_environment(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        """
[services.kafka]
ports = { 9094 = "10.0.0.5:29092" }
[services.k2-query-api]
ports = { 8000 = "${API_HOST}:8000" }
env = { K2_API_KEY = "${K2_API_KEY}", NOTE = "costs $$5" }
""",
    )
    target = Target.load(path, {"API_HOST": "10.0.0.6", "K2_API_KEY": "s3cret"})
    assert target.addresses() == {
        ("kafka", 9094): "10.0.0.5:29092",
        ("k2-query-api", 8000): "10.0.0.6:8000",
    }
    assert target.service_env("k2-query-api") == {"K2_API_KEY": "s3cret", "NOTE": "costs $5"}
    assert target.service_env("kafka") == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not = [toml", "not TOML"),
        ("[other]\nx = 1", "no [services.<name>] table"),
        ('[services.kafka]\nport = { 9094 = "h:1" }', "may hold only `ports` and `env`"),
        ('[services.kafka]\nports = { x = "h:1" }', "'x' is not a container port number"),
        ('[services.kafka]\nports = { 9094 = "h" }', "'h' is not host:port"),
        ('[services.kafka]\nports = { 9094 = "h:99999" }', "'h:99999' is not host:port"),
        (
            '[services.api]\nports = { 1 = "h:1" }\nenv = { K = "${UNSET_FOR_TEST}" }',
            "needs the environment variable UNSET_FOR_TEST, which is not set",
        ),
        ('[services.api]\nports = { 1 = "h:1" }\nenv = { K = "5$" }', "write $$ for a literal $"),
    ],
)
def test_an_unusable_target_file_is_one_line_naming_file_and_entry(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(TargetError) as failure:
        Target.load(path, {})
    message = str(failure.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_a_missing_target_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"missing\.toml: cannot read it"):
        Target.load(tmp_path / "missing.toml", {})


def test_unreachable_lists_what_refuses_and_the_guard_raises_naming_the_service(
    tmp_path: Path,
) -> None:
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        up, down = listening.getsockname()[1], closed.getsockname()[1]
        path = _write(
            tmp_path,
            f'[services.up]\nports = {{ 1 = "127.0.0.1:{up}" }}\n'
            f'[services.down]\nports = {{ 2 = "127.0.0.1:{down}" }}\n',
        )
        target = Target.load(path, {})
        lines = target.unreachable()
        assert len(lines) == 1
        assert lines[0].startswith(f"down port 2 at 127.0.0.1:{down}: ")
        with pytest.raises(StackUnhealthy) as failure:
            target.raise_if_unreachable()
    assert failure.value.service == "down"
    assert str(path) in str(failure.value)


def test_target_setting_is_a_path_from_the_rootdir_and_refuses_stack_starting_options() -> None:
    root = Path("/repo")
    settings = Settings.resolve({}, {}, {"K2_E2E_TARGET": "envs/prod.toml"}, root, "K2_E2E")
    assert settings.target == root / "envs/prod.toml"
    for env in ({"K2_E2E_KEEP": "1"}, {"K2_E2E_ENGINES": "unix:///var/run/docker.sock"}):
        with pytest.raises(SettingsError, match="cannot be combined"):
            Settings.resolve({"target": "/t.toml"}, {}, env, root, "K2_E2E")


def _item(fixtures: tuple[str, ...], operational: bool) -> Any:
    marker = object() if operational else None
    return SimpleNamespace(
        nodeid="t.py::test_x",
        fixturenames=fixtures,
        get_closest_marker=lambda name: marker if name == "operational" else None,
    )


def test_only_operational_tests_that_control_no_container_run_against_a_target() -> None:
    assert target_verdict(_item(("stack_target", "api"), operational=True)) is None
    assert "needs control" in str(target_verdict(_item(("stack_manager",), operational=False)))
    assert "not marked operational" in str(target_verdict(_item(("tmp_path",), operational=False)))
    with pytest.raises(pytest.UsageError, match="marked operational but its fixtures reach"):
        target_verdict(_item(("stack_target", "stack_manager"), operational=True))


def test_addresses_that_drop_connections_are_waited_on_together(tmp_path: Path) -> None:
    """A host that drops packets holds each attempt for its whole timeout: not one after another.

    A listener whose accept queue is full drops further connection attempts, as a host
    behind a black-holing firewall does.
    """
    timeout_s = 0.5
    with socket.socket() as full, socket.socket() as queued:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        queued.connect(("127.0.0.1", port))  # fills the queue: later attempts time out
        services = "".join(
            f'[services.s{n}]\nports = {{ {n + 1} = "127.0.0.1:{port}" }}\n' for n in range(4)
        )
        target = Target.load(_write(tmp_path, services), {})
        started = time.monotonic()
        lines = target.unreachable(timeout_s)
        elapsed = time.monotonic() - started
    assert len(lines) == 4, lines
    assert all("timed out" in line for line in lines), lines
    assert elapsed < 3 * timeout_s, f"{elapsed:.2f} s: the attempts ran one after another"
