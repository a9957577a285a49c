"""How many CPUs this process may really use: affinity and the cgroup CPU quota, not the host.

``os.cpu_count()`` reports the host's CPUs, so a container limited to 4 CPUs on a 32-core host
would size every thread pool (TensorFlow, ONNX Runtime, TFLite, GDAL, the patch writers) for 32
and thrash. ``available_cpus`` is the smallest of: the CPUs in this process's affinity mask, the
cgroup v2 ``cpu.max`` quota (or cgroup v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``) rounded up.
Every thread pool in satseg is sized from it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _own_cgroup_dirs(root: Path) -> list[Path]:
    """The cgroup directories of this process, innermost first (v2 unified, then v1 cpu)."""
    dirs: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controllers == "":
            base = root
        elif "cpu" in controllers.split(","):
            base = root / controllers if (root / controllers).is_dir() else root / "cpu"
        else:
            continue
        d = base / rel
        while True:  # a quota set on a parent applies to the children too
            dirs.append(d)
            if d == base or d.parent == d:
                break
            d = d.parent
    dirs.append(root)
    return dirs


def _quota_of(d: Path) -> float | None:
    """CPUs allowed by the quota in cgroup directory ``d``, None when unlimited or absent."""
    try:
        quota_s, period_s = (d / "cpu.max").read_text().split()[:2]
        if quota_s == "max":
            return None
        return int(quota_s) / int(period_s)
    except (OSError, ValueError):
        pass
    try:
        quota = int((d / "cpu.cfs_quota_us").read_text())
        period = int((d / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota over this process's cgroups, None when there is none."""
    quotas = [q for d in _own_cgroup_dirs(root) if (q := _quota_of(d)) is not None]
    return min(quotas) if quotas else None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process can use: min(affinity, ceil(cgroup quota)), at least 1."""
    n = _affinity()
    quota = cgroup_quota(root)
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


# Thread-pool sizes read from the environment by the native libraries when they start:
# TensorFlow (intra-op: Eigen, inter-op: tf_Compute), OpenMP/oneDNN, OpenBLAS/MKL, GDAL.
THREAD_ENV = (
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GDAL_NUM_THREADS",
)


def configure_threads(root: Path = CGROUP_ROOT) -> int:
    """Size every native thread pool of this process from ``available_cpus``; returns it.

    Sets the variables of ``THREAD_ENV`` (a value already set by the operator wins), so
    TensorFlow, OpenMP, BLAS and GDAL read them when they start; if TensorFlow is already
    imported and its runtime not yet started, its pools are set directly too. Call it
    before TensorFlow runs anything (``satseg.models.use_tf_keras`` does).
    """
    import sys

    n = available_cpus(root)
    for var in THREAD_ENV:
        os.environ.setdefault(var, str(n))
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        try:
            tf.config.threading.set_intra_op_parallelism_threads(
                int(os.environ["TF_NUM_INTRAOP_THREADS"])
            )
            tf.config.threading.set_inter_op_parallelism_threads(
                int(os.environ["TF_NUM_INTEROP_THREADS"])
            )
        except (RuntimeError, ValueError):  # runtime already started: its pools are fixed
            pass
    return n


def onnx_session_options(root: Path = CGROUP_ROOT) -> Any:
    """``onnxruntime.SessionOptions`` with its intra-op pool sized from ``available_cpus``.

    ONNX Runtime sizes its pool from the host's cores and reads no environment variable.
    ``satseg.registry.artifacts.ort_session`` starts from these for every session.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = available_cpus(root)
    opts.inter_op_num_threads = 1
    return opts
