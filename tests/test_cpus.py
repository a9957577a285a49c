"""available_cpus: the affinity mask and the cgroup quota bound every thread pool."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from satseg import cpus


def _fake_v2(tmp_path: Path, cpu_max: str) -> Path:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


def test_cgroup_v2_quota_is_read_and_rounded_up(tmp_path: Path) -> None:
    root = _fake_v2(tmp_path, "150000 100000")
    assert cpus.cgroup_quota(root) == pytest.approx(1.5)
    assert cpus.available_cpus(root) == min(2, len(os.sched_getaffinity(0)))


def test_unlimited_quota_leaves_the_affinity(tmp_path: Path) -> None:
    root = _fake_v2(tmp_path, "max 100000")
    assert cpus.cgroup_quota(root) is None
    assert cpus.available_cpus(root) == len(os.sched_getaffinity(0))


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert cpus.cgroup_quota(tmp_path) == pytest.approx(0.5)
    assert cpus.available_cpus(tmp_path) == 1  # never below one


def test_v1_without_quota_is_unlimited(tmp_path: Path) -> None:
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert cpus.cgroup_quota(tmp_path) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cpus.cgroup_quota(tmp_path / "absent") is None


def test_affinity_bounds_the_count(tmp_path: Path) -> None:
    before = os.sched_getaffinity(0)
    one = {min(before)}
    os.sched_setaffinity(0, one)
    try:
        assert cpus.available_cpus(tmp_path) == 1
    finally:
        os.sched_setaffinity(0, before)
    assert cpus.available_cpus(tmp_path) == len(before)
