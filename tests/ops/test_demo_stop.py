"""`make stop` (satseg.demo.stop) ends every process of the deployment and says which.

A real process tree stands in for Airflow's standalone: a session leader that quits on
SIGINT (as the standalone does) and leaves behind what a stop can miss: a task in its own
process group that ignores SIGTERM and SIGINT (Airflow's task supervisor gives each task its
own group), a grandchild of it, a child that exits on SIGTERM, and a process that left the
session (setsid) and is only known by the deployment's marker variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from satseg import demo
from satseg.config import get_settings

STUBBORN = """
import os, signal, subprocess, sys, time
{setup}
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
if len(sys.argv) > 1:  # also start a grandchild in this process group
    subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"])
while True:
    time.sleep(0.2)
"""

LEADER = """
import json, os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, lambda *a: os._exit(0))  # quits, leaving its children running
py = sys.executable
task = subprocess.Popen([py, "-c", sys.argv[2], "grandchild"])
polite = subprocess.Popen([py, "-c", "import time\\nwhile True: time.sleep(1)"])
runaway = subprocess.Popen([py, "-c", sys.argv[3]])
time.sleep(1.5)  # the grandchild exists
with open(sys.argv[1], "w") as fh:
    json.dump({"task": task.pid, "polite": polite.pid, "runaway": runaway.pid}, fh)
while True:
    time.sleep(0.2)
"""


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_tree(settings, tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    home = settings.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    pids_file = tmp_path / "pids.json"
    env = {**os.environ, demo.DEPLOYMENT_VAR: str(home)}
    task = STUBBORN.format(setup="os.setpgid(0, 0)")
    runaway = STUBBORN.format(setup="os.setsid()")
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER, str(pids_file), task, runaway],
        env=env,
        start_new_session=True,
    )
    (home / "standalone.pid").write_text(str(leader.pid))
    deadline = time.monotonic() + 60
    while not pids_file.exists() or not pids_file.read_text():
        assert time.monotonic() < deadline, "the process tree did not start"
        time.sleep(0.2)
    pids = json.loads(pids_file.read_text())
    pids["leader"] = leader.pid
    grandchildren = psutil.Process(pids["task"]).children()
    assert len(grandchildren) == 1
    pids["grandchild"] = grandchildren[0].pid
    assert os.getpgid(pids["task"]) == pids["task"] != os.getpgid(leader.pid)
    assert os.getsid(pids["runaway"]) == pids["runaway"] != leader.pid
    return leader, pids


def test_stop_ends_every_process_of_the_deployment(settings, tmp_path, capsys) -> None:
    leader, pids = _start_tree(settings, tmp_path)
    try:
        rc = demo.stop(settings, timeout=5, grace=1)
        leader.wait(timeout=10)
        out = capsys.readouterr().out
        assert rc == 0, out
        still = {name: pid for name, pid in pids.items() if _running(pid)}
        assert still == {}, f"left running: {still}\n{out}"
        assert f"stopped airflow (pid {pids['leader']})" in out
        # the leader quit on SIGINT; every other process is named with the signal it took
        for name, sig in (
            ("task", "SIGKILL"),
            ("grandchild", "SIGKILL"),
            ("runaway", "SIGKILL"),
            ("polite", "SIGTERM"),
        ):
            assert f"ended pid {pids[name]} (" in out and any(
                line.strip().startswith(f"ended pid {pids[name]} ") and line.endswith(sig)
                for line in out.splitlines()
            ), f"{name}: {sig}\n{out}"
        assert not (settings.home / "airflow" / "standalone.pid").exists()
    finally:
        for pid in pids.values():
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        leader.wait(timeout=10)


def test_stop_finds_a_leftover_without_the_pid_file(settings, tmp_path, capsys) -> None:
    """A process that left the session is ended even when the pid file is gone."""
    leader, pids = _start_tree(settings, tmp_path)
    try:
        os.kill(leader.pid, 2)
        leader.wait(timeout=10)
        (settings.home / "airflow" / "standalone.pid").unlink()
        assert demo.stop(settings, timeout=1, grace=1) == 0
        out = capsys.readouterr().out
        assert not _running(pids["runaway"]), out
        assert f"ended pid {pids['runaway']} (" in out
        assert "stopped a deployment" in out
    finally:
        for pid in pids.values():
            try:
                os.kill(pid, 9)
            except OSError:
                pass


def test_stop_spares_everything_else(settings, tmp_path, capsys) -> None:
    """Nothing of another deployment (another marker) or outside the session is touched."""
    other = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"],
        env={**os.environ, demo.DEPLOYMENT_VAR: str(tmp_path / "other" / "airflow")},
        start_new_session=True,
    )
    try:
        assert demo.stop(settings, timeout=1, grace=1) == 0
        assert "not running" in capsys.readouterr().out
        assert _running(other.pid)
    finally:
        other.kill()
        other.wait(timeout=10)


def test_the_marker_reaches_the_standalone(settings) -> None:
    env = demo.airflow_env(get_settings(home=settings.home))
    assert env[demo.DEPLOYMENT_VAR] == str(settings.home / "airflow")


def test_nothing_running_is_reported(settings, capsys) -> None:
    assert demo.deployment_processes(None, str(settings.home / "airflow")) == []
    assert demo.stop(settings) == 0
    assert capsys.readouterr().out.strip() == "not running"
