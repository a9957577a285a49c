"""The embedded deployment starts healthy and `stop` leaves no process behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_demo_start_health_stop(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"SATSEG_HOME": str(tmp_path / "home"), "SATSEG_API_PORT": str(port)})
    # the demo must not depend on the test's own Airflow env or working directory
    start = subprocess.run(
        [sys.executable, "-m", "satseg.demo", "start", "--no-follow"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    pid_file = tmp_path / "home" / "airflow" / "standalone.pid"
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        assert f"http://localhost:{port}" in start.stdout
        assert "Login:        admin / " in start.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health") as r:
            h = json.loads(r.read())
        assert h["metadatabase"]["status"] == "healthy"
        assert h["scheduler"]["status"] == "healthy"
        assert list((tmp_path / "home" / "inbox" / "demo").glob("*.tif"))
        pgid = int(pid_file.read_text())
    finally:
        stop = subprocess.run(
            [sys.executable, "-m", "satseg.demo", "stop"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert stop.returncode == 0, stop.stderr
    deadline = time.time() + 10
    while time.time() < deadline and _group_alive(pgid):
        time.sleep(0.5)
    assert not _group_alive(pgid), "processes of the demo are still running"
    assert not pid_file.exists()
