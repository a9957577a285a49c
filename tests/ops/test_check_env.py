"""docker/check_env.py: the image build fails unless it installed exactly the runtime lock."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.airflow_helpers import load_module
from tests.ops.procs import REPO

SCRIPT = REPO / "docker" / "check_env.py"


@pytest.fixture(scope="module")
def check():
    return load_module("check_env", SCRIPT)


def _run(lock) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(lock)], capture_output=True, text=True, timeout=120
    )


def test_this_environment_is_the_runtime_lock() -> None:
    r = _run(REPO / "requirements.lock")
    assert r.returncode == 0, r.stderr
    assert "locked packages installed at their locked versions" in r.stdout


def test_a_version_drift_fails_the_build(tmp_path) -> None:
    lock = (REPO / "requirements.lock").read_text()
    drifted = tmp_path / "requirements.lock"
    drifted.write_text(lock.replace("\nmlflow==3.17.2\n", "\nmlflow==3.16.0\n", 1))
    assert drifted.read_text() != lock
    r = _run(drifted)
    assert r.returncode == 1
    assert "mlflow==3.16.0: 3.17.2 installed" in r.stderr
    (tmp_path / "absent.lock").write_text("satseg-no-such-package==1.0\n")
    r = _run(tmp_path / "absent.lock")
    assert r.returncode == 1 and "not installed" in r.stderr
    (tmp_path / "empty.lock").write_text("# nothing\n")
    assert _run(tmp_path / "empty.lock").returncode == 2


def test_pins_are_read_like_pip(check) -> None:
    text = "Foo_Bar==1.2 \\\n    --hash=sha256:abc\n# via x\nbaz[extra]==3.0 ; python_version>'3'\n"
    assert check.pins(text) == {"foo-bar": "1.2", "baz": "3.0"}
    assert check.mismatches({"a": "1"}, {"a": "1"}) == []
