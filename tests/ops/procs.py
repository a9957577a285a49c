"""Helpers to run real Airflow / MLflow processes in tests and leave nothing behind.

Each process starts in its own session (process group) so that it and every child it
forks (LocalExecutor workers, Celery pool, task supervisors) are signalled together.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    """(status, parsed JSON or text) without raising on HTTP errors."""
    h = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "satseg-test-boundary-7d1f"
    parts: list[bytes] = []
    for k, v in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        )
    for k, (name, content) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5, procs: Any = None
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with logs on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out = check()
        except Exception:
            out = None
        if out:
            return out
        if procs is not None:
            procs.assert_alive()
        time.sleep(interval)
    tail = procs.tails() if procs is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


class Procs:
    """A set of named background processes with log files, stopped as process groups."""

    def __init__(self, logdir: Path, env: dict[str, str]) -> None:
        self.logdir = logdir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.expect_dead: set[str] = set()
        logdir.mkdir(parents=True, exist_ok=True)

    def start(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or self.env,
            cwd=self.logdir,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = p
        self.expect_dead.discard(name)
        return p

    def airflow(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self.start(name, str(BIN / "airflow"), *args, env=env)

    def assert_alive(self) -> None:
        for name, p in self.procs.items():
            if name not in self.expect_dead and p.poll() is not None:
                raise AssertionError(f"{name} exited with {p.returncode}\n{self.tail(name)}")

    def tail(self, name: str, n: int = 4000) -> str:
        f = self.logdir / f"{name}.log"
        return f"--- {name} ---\n" + (f.read_text(errors="replace")[-n:] if f.exists() else "")

    def tails(self) -> str:
        return "\n".join(self.tail(n) for n in self.procs)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group of ``name`` (the process and all its children)."""
        p = self.procs[name]
        self.expect_dead.add(name)
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def kill_tree(self, name: str) -> list[int]:
        """SIGKILL ``name`` and every descendant, whatever process group it moved to.

        What a lost machine or an OOM-killed container does: Airflow's task supervisor puts
        each task in its own process group, so signalling the worker's group is not enough.
        """
        import psutil

        p = self.procs[name]
        self.expect_dead.add(name)
        try:
            tree = [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for proc in tree:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=20)
        p.wait(timeout=10)
        return [proc.pid for proc in tree]

    def stop(self, name: str, grace: float = 15) -> None:
        """SIGTERM the group, then SIGKILL whatever is left of it and of its descendants."""
        self._stop([name], grace)

    def stop_all(self, grace: float = 15) -> None:
        """Stop every process at once (one shared grace period, not one per process)."""
        self._stop(list(self.procs), grace)

    def _stop(self, names: list[str], grace: float) -> None:
        import psutil

        descendants: list[psutil.Process] = []
        for name in names:
            p = self.procs[name]
            self.expect_dead.add(name)
            try:
                descendants += psutil.Process(p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for name in names:
            try:
                self.procs[name].wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for name in names:  # children (task runners, pool workers) may outlive the parent
            try:
                os.killpg(self.procs[name].pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in descendants:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(descendants, timeout=10)
        for name in names:
            if self.procs[name].poll() is None:
                self.procs[name].wait(timeout=10)

    def group_alive(self, name: str) -> bool:
        try:
            os.killpg(self.procs[name].pid, 0)
        except ProcessLookupError:
            return False
        return True
