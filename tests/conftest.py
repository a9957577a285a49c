"""Shared fixtures. Airflow reads its config at import, so its environment is set here first."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_REAL = REPO.parent / "shared" / "data" / "real"

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="satseg-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_AIRFLOW_HOME / "logs"),
        "SM_FRAMEWORK": "tf.keras",
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        # ONNX conversion at registration costs 20-45 s a model: on only where a test asks
        # (tests/registry/test_artifacts.py, the end-to-end loop)
        "SATSEG_ONNX_ARTIFACTS": "false",
        "GIT_AUTHOR_NAME": "satseg-tests",
        "GIT_AUTHOR_EMAIL": "tests@satseg.local",
        "GIT_COMMITTER_NAME": "satseg-tests",
        "GIT_COMMITTER_EMAIL": "tests@satseg.local",
    }
)
os.environ.pop("SATSEG_HOME", None)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings with SATSEG_HOME in a fresh temp dir (also exported for DAG tasks)."""
    from satseg.config import get_settings, reset_settings_cache

    home = tmp_path / "home"
    monkeypatch.setenv("SATSEG_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    reset_settings_cache()
    s = get_settings()
    s.ensure_dirs()
    yield s
    reset_settings_cache()


@pytest.fixture(scope="session")
def airflow_db() -> Iterator[Path]:
    """A migrated SQLite metadata DB for dag.test() runs (about 6 s, once per session)."""
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=os.environ)
    yield _AIRFLOW_HOME


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real imagery not available at {SHARED_REAL} (../shared is absent)")
    return SHARED_REAL


# --------------------------------------------------------------------------- fast exit
# After the summary, the interpreter's teardown frees every TensorFlow graph the session built
# (their stack traces included): on a 2-core CI machine that took about 4 minutes after an
# 8 GB session (py-spy, stop 25). Nothing runs at exit that the tests need (no coverage, no
# report files), so the process leaves with pytest's exit status once the summary is out.
# SATSEG_TEST_FULL_TEARDOWN=1 keeps the normal interpreter exit (e.g. to debug a leak).
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _EXIT_STATUS or os.environ.get("SATSEG_TEST_FULL_TEARDOWN") == "1":
        return
    # An xdist worker leaves the same way: its last report ("workerfinished", with its exit
    # status) went to the controller at the end of pytest_sessionfinish, written to the
    # channel before this hook runs; the controller counts a worker that finished as down
    # and does not wait for it (each worker's teardown took ~2 minutes after its share).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[-1])


# --------------------------------------------------------------------------- order
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Test files holding a slow test go first, in their collected order (a stable sort:
    within a file the order is unchanged). ``make test`` hands whole files to two workers
    in this order, so the long files start early and the short ones fill the end, instead of
    one worker running the end-to-end loop alone after the other has finished."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
