"""Issue 15, classes 4 and 6: the embedded deployment and the API docs are not open by default.

Class 4: the demo's AIRFLOW_HOME (DB, admin password, secrets, logs) is for this account only,
the API server listens on 127.0.0.1 and the log servers (which Airflow 3.3 binds to every
interface) are not started. The real ``airflow standalone`` start is checked in
tests/test_demo.py with the helpers below (one slow start, not two).

Class 6: ``/openapi.json``, ``/docs`` and ``/redoc`` need the login like every other route,
and their pages load nothing from another host (the Swagger UI/ReDoc files are served here).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount

DOC_PAGES = ("/openapi.json", "/docs", "/redoc")
ASSET_REF = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def world_readable_files(root: Path) -> list[Path]:
    """Files under ``root`` another account could read (mode bits and every parent's x bit)."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        d = Path(dirpath)
        if any(mode(p) & 0o005 != 0o005 for p in (d, *d.parents) if p.is_relative_to(root)):
            continue  # a folder on the way is closed to others
        found += [d / f for f in files if mode(d / f) & 0o004]
    return found


def _socket_inodes(pgid: int) -> set[str]:
    inodes: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) != pgid:
                continue
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:  # the process ended, or is not ours to read
            continue
    return inodes


def _addr(hex_addr: str) -> str:
    if len(hex_addr) == 8:  # IPv4, little-endian
        return ".".join(str(int(hex_addr[i : i + 2], 16)) for i in (6, 4, 2, 0))
    words = [hex_addr[i : i + 8] for i in range(0, 32, 8)]
    raw = b"".join(bytes.fromhex(w)[::-1] for w in words)
    if raw[:12] == b"\0" * 10 + b"\xff\xff":  # IPv4-mapped
        return ".".join(str(b) for b in raw[12:])
    return ":".join(raw[i : i + 2].hex() for i in range(0, 16, 2))


def listening_sockets(pgid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process group ``pgid`` listens on."""
    inodes = _socket_inodes(pgid)
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                host, port = f[1].split(":")
                out.add((_addr(host), int(port, 16)))
    return out


def test_listening_sockets_reads_this_process_group() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ("127.0.0.1", port) in listening_sockets(os.getpgid(0))


# ---- class 4: the embedded deployment's home and environment -------------------------------


def test_airflow_home_is_private_and_the_api_listens_on_localhost(settings) -> None:
    from satseg import demo

    old = os.umask(0)  # even with the most open umask, nothing is created readable by others
    try:
        home = demo.prepare_home(settings)
    finally:
        os.umask(old)
    env = demo.airflow_env(settings)
    assert env["AIRFLOW_HOME"] == str(home)
    for d in (home, home / "logs", home / "bin"):
        assert mode(d) == 0o700, d
    for f in ("airflow.db", demo.PASSWORDS_FILE, "secrets.json"):
        assert mode(home / f) == 0o600, f
    password = demo.admin_password(settings)
    assert password and len(password) >= 16
    assert json.loads((home / demo.PASSWORDS_FILE).read_text()) == {"admin": password}
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS"] == "0o600"
    assert env["AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS"] == "0o700"
    assert env["PATH"].split(os.pathsep)[0] == str(home / "bin")  # the log-server shim
    assert world_readable_files(settings.home / "airflow") == []
    # a second start keeps the password (Airflow reads the same file) and the DB
    demo.prepare_home(settings)
    assert demo.admin_password(settings) == password


def test_an_older_open_home_is_tightened(settings) -> None:
    from satseg import demo

    home = settings.home / "airflow"
    home.mkdir(mode=0o755)
    for name in ("airflow.db", "standalone.log", demo.PASSWORDS_FILE):
        (home / name).write_text("{}" if name == demo.PASSWORDS_FILE else "x")
        (home / name).chmod(0o644)
    demo.prepare_home(settings)
    assert mode(home) == 0o700
    for name in ("airflow.db", "standalone.log", demo.PASSWORDS_FILE):
        assert mode(home / name) == 0o600, name
    assert (home / "airflow.db").read_text() == "x"  # an existing DB is never replaced


def test_binding_elsewhere_is_a_setting(settings, monkeypatch) -> None:
    from satseg import demo
    from satseg.config import get_settings, reset_settings_cache

    monkeypatch.setenv("SATSEG_API_HOST", "0.0.0.0")
    monkeypatch.setenv("SATSEG_AIRFLOW_LOG_SERVERS", "true")
    reset_settings_cache()
    s = get_settings()
    env = demo.airflow_env(s)
    assert env["AIRFLOW__API__HOST"] == "0.0.0.0"
    assert str(s.home / "airflow" / "bin") not in env["PATH"].split(os.pathsep)


def test_the_shim_skips_the_log_servers_only(settings, tmp_path) -> None:
    """standalone runs ``airflow scheduler``/``triggerer`` from PATH; the shim adds the flag."""
    from satseg import demo

    fake = tmp_path / "fake-airflow"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o700)
    shim = tmp_path / "airflow"
    shim.write_text(demo._SHIM.format(airflow=str(fake)))

    def run(*args: str) -> str:
        return subprocess.run(
            ["sh", str(shim), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert run("scheduler") == "scheduler --skip-serve-logs"
    assert run("triggerer", "--capacity", "2") == "triggerer --capacity 2 --skip-serve-logs"
    assert run("api-server") == "api-server"
    assert run("dag-processor") == "dag-processor"
    assert run("db", "migrate") == "db migrate"
    home = demo.prepare_home(settings)
    assert "--skip-serve-logs" in (home / "bin" / "airflow").read_text()
    assert os.access(home / "bin" / "airflow", os.X_OK)


# ---- class 6: the API docs -----------------------------------------------------------------


def _authed_app():
    from satseg.api import app as api

    app = api.create_app()
    app.dependency_overrides[api.AUTHENTICATED] = lambda: None  # stands for a valid token
    return app


def test_docs_need_a_login(settings) -> None:
    from satseg.api.app import create_app

    with TestClient(create_app()) as c:
        for path in (*DOC_PAGES, "/docs/assets/swagger-ui-bundle.js"):
            r = c.get(path)
            assert r.status_code == 401, (path, r.text)
            assert "swagger" not in r.text.lower() and '"paths"' not in r.text


def _refs(html: str) -> list[str]:
    return [a or b for a, b in ASSET_REF.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_load_nothing_from_another_host(settings, page) -> None:
    """Mounted like the plugin (/satseg on the API server): every asset is ours and answers."""
    outer = Starlette(routes=[Mount("/satseg", app=_authed_app())])
    with TestClient(outer) as c:
        r = c.get("/satseg" + page)
        assert r.status_code == 200, r.text
        html = r.text
        assert not re.search(r"https?://", html), "the page names another host"
        refs = _refs(html)
        assert "/satseg/openapi.json" in refs
        assets = [u for u in refs if "/docs/assets/" in u]
        assert len(assets) == (3 if page == "/docs" else 2)  # js (+css) + favicon
        for url in refs:
            assert url.startswith("/satseg/"), url
            got = c.get(url)
            assert got.status_code == 200, url
            assert len(got.content) > 1000, url
        spec = c.get("/satseg/openapi.json").json()
        assert "/data/upload" in spec["paths"] and "/docs" not in spec["paths"]


def test_swagger_ui_makes_no_remote_call(settings) -> None:
    with TestClient(_authed_app()) as c:
        html = c.get("/docs").text
        assert '"validatorUrl": null' in html  # the public validator would be a remote call
        assert c.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
        js = c.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"]
        assert "javascript" in js
        for bad in ("../app.py", "..%2Fapp.py", "%2e%2e%2f%2e%2e%2fconfig.py", "nope.js"):
            assert c.get("/docs/assets/" + bad).status_code == 404, bad
