"""CpuLimit against fake cgroup trees (v1 and v2): names, quota files, refusals, clean-up.

The real kernel's enforcement is proved by tests/e2e/test_docker_stack.py (a busy child
under a quarter core gets a quarter core).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from e2e_stack.cpu_limit import PERIOD_US, CpuLimit, CpuLimitError, remove_unused


def v1_root(tmp_path: Path) -> Path:
    """A cgroup v1 layout: one directory per controller hierarchy."""
    for hierarchy in ("cpu", "memory", "pids"):
        (tmp_path / hierarchy).mkdir()
    return tmp_path


def v2_root(tmp_path: Path, controls: str = "cpu memory pids") -> Path:
    """A cgroup v2 layout: one tree, controllers listed at the root."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text(controls + "\n")
    return tmp_path


def test_name_and_cgroup_parent_are_per_limit_value() -> None:
    limit = CpuLimit(1.25, "k2e2e")
    assert limit.name == "k2e2e-cpus-1_25"
    assert limit.cgroup_parent == "/k2e2e-cpus-1_25"
    assert CpuLimit(1.0, "k2e2e").name == "k2e2e-cpus-1"


def test_quota_is_cores_times_the_period() -> None:
    assert CpuLimit(1.25, "p").quota_us == round(1.25 * PERIOD_US)
    assert CpuLimit(0.5, "p", period_us=20_000).quota_us == 10_000


def test_v1_create_writes_period_then_quota(tmp_path: Path) -> None:
    limit = CpuLimit(1.5, "p", v1_root(tmp_path))
    limit.create()
    directory = tmp_path / "cpu" / limit.name
    assert (directory / "cpu.cfs_period_us").read_text() == f"{PERIOD_US}\n"
    assert (directory / "cpu.cfs_quota_us").read_text() == f"{round(1.5 * PERIOD_US)}\n"
    limit.create()  # idempotent


def test_v2_create_writes_cpu_max(tmp_path: Path) -> None:
    limit = CpuLimit(0.75, "p", v2_root(tmp_path))
    limit.create()
    assert (tmp_path / limit.name / "cpu.max").read_text() == f"7500 {PERIOD_US}\n"


def test_check_refuses_remote_engines_and_other_drivers(tmp_path: Path) -> None:
    limit = CpuLimit(1, "p", v1_root(tmp_path))
    with pytest.raises(CpuLimitError, match="DOCKER_HOST"):
        limit.check("cgroupfs", engine_is_local=False)
    with pytest.raises(CpuLimitError, match="cgroupfs driver, this one uses 'systemd'"):
        limit.check("systemd", engine_is_local=True)
    limit.check("cgroupfs", engine_is_local=True)


def test_check_refuses_more_cores_than_the_machine_has(tmp_path: Path) -> None:
    limit = CpuLimit((os.cpu_count() or 1) + 1, "p", v1_root(tmp_path))
    with pytest.raises(CpuLimitError, match="at most the"):
        limit.check("cgroupfs", engine_is_local=True)


def test_check_refuses_v2_without_the_cpu_controller(tmp_path: Path) -> None:
    limit = CpuLimit(1, "p", v2_root(tmp_path, controls="memory pids"))
    with pytest.raises(CpuLimitError, match="cpu controller is not enabled"):
        limit.check("cgroupfs", engine_is_local=True)


def test_remove_takes_the_directory_from_every_hierarchy(tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    limit = CpuLimit(1, "p", root)
    # Bare directories: the kernel's cgroup files never block rmdir, a fake tree's would.
    (root / "cpu" / limit.name).mkdir()
    (root / "memory" / limit.name).mkdir()  # the engine makes one per hierarchy
    assert limit.remove()
    assert not any((root / h / limit.name).exists() for h in ("cpu", "memory", "pids"))
    assert limit.remove()  # already gone is fine


def test_remove_reports_a_cgroup_still_in_use(tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    limit = CpuLimit(1, "p", root)
    limit.create()
    # A fake tree cannot be busy, but a directory with contents fails rmdir the same way.
    assert not limit.remove()
    assert (root / "cpu" / limit.name).exists()


def test_remove_unused_takes_only_empty_groups_of_its_prefix(tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    (root / "cpu" / "p-cpus-1_5").mkdir()
    busy = CpuLimit(1, "p", root)
    busy.create()  # has files: "in use"
    (root / "cpu" / "other-cpus-1").mkdir()
    assert remove_unused("p", root) == ["p-cpus-1_5"]
    assert (root / "cpu" / busy.name).exists()
    assert (root / "cpu" / "other-cpus-1").exists()


def test_stat_reads_the_cgroups_cpu_stat(tmp_path: Path) -> None:
    limit = CpuLimit(1, "p", v1_root(tmp_path))
    assert limit.stat() == {}
    limit.create()
    (tmp_path / "cpu" / limit.name / "cpu.stat").write_text("nr_periods 7\nnr_throttled 3\n")
    assert limit.stat() == {"nr_periods": 7, "nr_throttled": 3}
