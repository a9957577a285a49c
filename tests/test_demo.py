"""The embedded deployment starts healthy, private and on localhost; `stop` leaves nothing."""

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

from tests.hostile.test_deployment import listening_sockets, mode, world_readable_files

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


def _assert_private_and_local(home: Path, pgid: int, port: int) -> None:
    """Issue 15 class 4: nothing of the running demo is open to other accounts or hosts."""
    af = home / "airflow"
    assert mode(af) == 0o700
    for name in ("airflow.db", "simple_auth_manager_passwords.json.generated", "standalone.log"):
        assert mode(af / name) == 0o600, name
    password = json.loads((af / "simple_auth_manager_passwords.json.generated").read_text())
    assert password["admin"] not in (af / "standalone.log").read_text()
    for f in world_readable_files(home):
        assert password["admin"].encode() not in f.read_bytes(), f
    deadline = time.time() + 30  # the triggerer starts after the API server answers
    while time.time() < deadline and "airflow triggerer" not in _cmdlines(pgid):
        time.sleep(1)
    procs = _cmdlines(pgid)
    for component in ("scheduler", "triggerer"):  # running, without their log servers
        assert f"airflow {component} --skip-serve-logs" in procs, procs
    time.sleep(3)
    sockets = listening_sockets(pgid)
    assert ("127.0.0.1", port) in sockets, sockets
    assert {host for host, _ in sockets} == {"127.0.0.1"}, sockets  # no log server, no 0.0.0.0


def _cmdlines(pgid: int) -> str:
    out = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.getpgid(int(proc.name)) == pgid:
                out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return "\n".join(out)


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
        _assert_private_and_local(tmp_path / "home", pgid, port)
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
