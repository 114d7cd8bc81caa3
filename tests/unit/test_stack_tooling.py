"""The stack tooling's pure parts: mirror discovery, input hashing, image specs, ports."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from e2e_stack import free_port
from k2.stack import images, transfer
from k2.stack.baseimage import mirrors_from_apt
from k2.stack.errors import StackError
from k2.stack.fetch import FetchStep
from k2.stack.images import PlannedImage, inputs_hash, load_specs

# Made-up mirror names: tests must not carry a real registry host.
DEB822 = """\
Types: deb
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main
"""


def _etc_apt(tmp_path: Path, sources: str = "", legacy: str = "") -> Path:
    (tmp_path / "sources.list.d").mkdir()
    if sources:
        (tmp_path / "sources.list.d" / "debian.sources").write_text(sources)
    if legacy:
        (tmp_path / "sources.list").write_text(legacy)
    return tmp_path


def test_mirror_comes_from_deb822_bookworm_stanza_not_security(tmp_path: Path) -> None:
    assert mirrors_from_apt(_etc_apt(tmp_path, DEB822)) == ["http://mirror.invalid/debian"]


def test_mirror_comes_from_legacy_sources_list(tmp_path: Path) -> None:
    legacy = (
        "# comment\n"
        "deb [arch=amd64] http://old.invalid/debian bookworm main\n"
        "deb-src http://src.invalid/debian bookworm main\n"
        "deb http://old.invalid/debian-security bookworm-security main\n"
    )
    assert mirrors_from_apt(_etc_apt(tmp_path, legacy=legacy)) == ["http://old.invalid/debian"]


def test_no_mirror_configured_gives_empty_list(tmp_path: Path) -> None:
    assert mirrors_from_apt(_etc_apt(tmp_path)) == []


def _service(root: Path, name: str, toml: str = "", files: dict[str, str] | None = None) -> Path:
    directory = root / "docker" / name
    directory.mkdir(parents=True)
    (directory / "image.toml").write_text(toml)
    (directory / "Dockerfile").write_text("FROM debian:bookworm-slim\n")
    for rel, text in (files or {}).items():
        (directory / rel).write_text(text)
    return directory


def test_inputs_hash_changes_with_content_mode_base_and_extra_inputs(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("x = 1\n")
    _service(tmp_path, "svc", 'extra_inputs = ["src"]\n', {"entry.sh": "echo hi\n"})
    [spec] = load_specs(tmp_path)
    first = inputs_hash(spec, "sha256:base1", tmp_path)
    assert first == inputs_hash(spec, "sha256:base1", tmp_path)

    assert inputs_hash(spec, "sha256:base2", tmp_path) != first
    entry = spec.directory / "entry.sh"
    entry.chmod(0o755)
    executable = inputs_hash(spec, "sha256:base1", tmp_path)
    assert executable != first
    entry.write_text("echo bye\n")
    assert inputs_hash(spec, "sha256:base1", tmp_path) not in (first, executable)
    before_extra = inputs_hash(spec, "sha256:base1", tmp_path)
    (tmp_path / "src" / "app.py").write_text("x = 2\n")
    assert inputs_hash(spec, "sha256:base1", tmp_path) != before_extra


def test_inputs_hash_ignores_caches(tmp_path: Path) -> None:
    _service(tmp_path, "svc")
    [spec] = load_specs(tmp_path)
    before = inputs_hash(spec, "b", tmp_path)
    (spec.directory / "__pycache__").mkdir()
    (spec.directory / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (spec.directory / "k2.egg-info").mkdir()  # an editable install's metadata
    (spec.directory / "k2.egg-info" / "PKG-INFO").write_text("Name: k2\n")
    assert inputs_hash(spec, "b", tmp_path) == before


def test_specs_parse_fetch_steps_and_tags(tmp_path: Path) -> None:
    _service(tmp_path, "b-svc", '[[fetch]]\nkind = "maven"\npom = "pom.xml"\ndest = "libs"\n')
    _service(
        tmp_path,
        "a-svc",
        '[[fetch]]\nkind = "go"\npackage = "example.invalid/x"\nversion = "v1"\ndest = "bin"\n',
    )
    specs = load_specs(tmp_path)
    assert [spec.service for spec in specs] == ["a-svc", "b-svc"]
    assert specs[0].fetch[0].describe() == "go module example.invalid/x@v1"
    assert specs[1].moving_ref == "k2/b-svc:local"
    assert specs[1].ref("abc") == "k2/b-svc:abc"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "curl", "dest": "x"}, "unknown fetch kind"),
        ({"kind": "maven", "dest": "../out", "pom": "p"}, "relative path"),
        ({"kind": "maven", "dest": "/abs", "pom": "p"}, "relative path"),
        ({"kind": "go", "dest": "bin", "package": "x"}, "exactly one of version or module"),
        (
            {"kind": "go", "dest": "bin", "package": "x", "version": "v1", "module": "go.mod"},
            "exactly one of version or module",
        ),
    ],
)
def test_bad_fetch_steps_are_refused_before_any_download(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FetchStep.from_toml(raw)


def test_invalid_image_toml_names_the_file(tmp_path: Path) -> None:
    _service(tmp_path, "svc", "[[fetch]\n")
    with pytest.raises(StackError, match=r"docker/svc/image.toml is invalid"):
        load_specs(tmp_path)


def test_missing_extra_input_is_refused(tmp_path: Path) -> None:
    _service(tmp_path, "svc", 'extra_inputs = ["nope"]\n')
    with pytest.raises(StackError, match="missing input"):
        load_specs(tmp_path)


def test_free_port_is_bindable_and_skips_taken_ports() -> None:
    rng = random.Random(7)
    taken = free_port(rng=random.Random(7))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        port = free_port(rng=rng)
        assert port != taken
        assert 20000 <= port <= 32767


def test_images_another_engine_built_for_the_same_inputs_are_copied_not_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _service(tmp_path, "a-svc", "")
    _service(tmp_path, "b-svc", "")
    _service(tmp_path, "c-svc", "")
    a, b, c = load_specs(tmp_path)
    planned = [PlannedImage(a, "h1", "build"), PlannedImage(b, "h2", "build")]
    planned.append(PlannedImage(c, "h3", "up to date"))
    asked: list[tuple[list[str], str]] = []

    def on_source(refs: list[str], env: dict[str, str]) -> set[str]:
        asked.append((sorted(refs), env["DOCKER_HOST"]))
        return {"k2/a-svc:h1"}

    monkeypatch.setattr(transfer, "present", on_source)
    states = [item.state for item in images._copied(planned, "tcp://127.0.0.9:2375")]
    assert states == ["copy", "build", "up to date"]
    assert asked == [(["k2/a-svc:h1", "k2/b-svc:h2"], "tcp://127.0.0.9:2375")]


def test_the_source_engine_is_named_without_a_docker_context() -> None:
    env = transfer.engine_env("unix:///var/run/docker.sock")
    assert env["DOCKER_HOST"] == "unix:///var/run/docker.sock"
    assert "DOCKER_CONTEXT" not in env


def test_k2_stacks_publish_on_the_session_address_with_kafka_free_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.e2e.k2_plugin import stack_variables

    monkeypatch.delenv("K2_KAFKA_HOST_PORT", raising=False)
    variables = stack_variables("127.0.0.2")
    assert variables["K2_PUBLISH_ADDRESS"] == "127.0.0.2"
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", int(variables["K2_KAFKA_HOST_PORT"])))
    monkeypatch.setenv("K2_KAFKA_HOST_PORT", "29999")
    assert stack_variables("127.0.0.1") == {"K2_PUBLISH_ADDRESS": "127.0.0.1"}
