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


_CHILD = """
import collections, json, os, sys
from pathlib import Path
for var in sys.argv[2:]:
    os.environ.pop(var, None)
from satseg import cpus
n = cpus.configure_threads(Path(sys.argv[1]))
env = {v: os.environ[v] for v in cpus.THREAD_ENV}
import tensorflow as tf
a = tf.random.uniform((256, 256))
(a @ a).numpy()
names = collections.Counter(
    Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")
)
print(json.dumps({"n": n, "env": env, "tf_compute": names["tf_Compute"],
                  "intra": tf.config.threading.get_intra_op_parallelism_threads()}))
"""


def _threads_child(root: Path, env: dict[str, str] | None = None) -> dict:
    import json
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), *cpus.THREAD_ENV],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _clear_thread_env(monkeypatch) -> None:
    """Unset the pool variables; set first so that monkeypatch restores them afterwards
    (configure_threads writes os.environ, which must not leak into later tests)."""
    for var in cpus.THREAD_ENV:
        monkeypatch.setenv(var, "0")
        monkeypatch.delenv(var)


def test_configure_threads_sets_every_pool_from_the_quota(tmp_path: Path, monkeypatch) -> None:
    root = _fake_v2(tmp_path, "100000 100000")  # a 1-CPU container
    _clear_thread_env(monkeypatch)
    assert cpus.configure_threads(root) == 1
    assert {v: os.environ[v] for v in cpus.THREAD_ENV} == dict.fromkeys(cpus.THREAD_ENV, "1")
    # an operator's explicit value wins
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    cpus.configure_threads(root)
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_configure_threads_follows_the_affinity(tmp_path: Path, monkeypatch) -> None:
    before = os.sched_getaffinity(0)
    _clear_thread_env(monkeypatch)
    os.sched_setaffinity(0, {min(before)})
    try:
        assert cpus.configure_threads(tmp_path) == 1  # no cgroup files: the mask decides
    finally:
        os.sched_setaffinity(0, before)
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == "1"


@pytest.mark.slow
def test_tensorflow_runs_the_pools_configure_threads_sized(tmp_path: Path) -> None:
    """A real TensorFlow process under a 1-CPU cgroup quota starts one inter-op thread."""
    got = _threads_child(_fake_v2(tmp_path, "100000 100000"))
    assert got["n"] == 1
    assert set(got["env"].values()) == {"1"}
    assert got["tf_compute"] == 1  # TF's inter-op pool (its default: one per CPU)
    assert got["intra"] == 0  # not imported yet when configured: TF read the environment


def test_onnx_session_options_use_the_quota(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    opts = cpus.onnx_session_options(_fake_v2(tmp_path, "100000 100000"))
    assert opts.intra_op_num_threads == 1
    assert opts.inter_op_num_threads == 1


def test_importing_the_models_package_configures_threads(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in cpus.THREAD_ENV}
    code = "import os, satseg.models, satseg.cpus as c; print(os.environ['TF_NUM_INTRAOP_THREADS'], c.available_cpus())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    threads, n = r.stdout.split()
    assert threads == n
