"""The embedded deployment: Airflow standalone on SQLite + local MLflow store, one command.

``python -m satseg.demo start`` is what ``make demo`` runs; ``stop`` ends every process it
started. Airflow's standalone only shuts down cleanly on SIGINT, so it is started in its own
session (process group) and stopped with SIGINT, then the group is reaped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from satseg.config import REPO_ROOT, Settings, get_settings

HEALTH = "/api/v2/monitor/health"


def airflow_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment that makes Airflow use this repo's DAGs/plugins and state under HOME."""
    env = dict(os.environ if base is None else base)
    home = settings.home / "airflow"
    env.update(
        {
            "SATSEG_HOME": str(settings.home),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(REPO_ROOT / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__API__PORT": str(settings.api_port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{settings.api_port}",
            "SM_FRAMEWORK": "tf.keras",
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # standalone spawns `airflow` from PATH: make it this environment's
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", ""))),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
            ),
        }
    )
    return env


def _pidfile(settings: Settings) -> Path:
    return settings.home / "airflow" / "standalone.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def health(port: int = 8080, timeout: float = 3.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH}", timeout=timeout) as r:
            return json.loads(r.read())
    except Exception:
        return None


def status(settings: Settings) -> dict[str, Any]:
    pf = _pidfile(settings)
    pid = int(pf.read_text()) if pf.exists() else None
    running = bool(pid and _alive(pid))
    return {
        "airflow_standalone": f"pid {pid}" if running else "not running",
        "health": health(settings.api_port) if running else None,
    }


def admin_password(settings: Settings) -> str | None:
    f = settings.home / "airflow" / "simple_auth_manager_passwords.json.generated"
    if f.exists():
        return json.loads(f.read_text()).get("admin")
    return None


def seed_inbox(settings: Settings) -> list[str]:
    """Drop generated scenes into the inbox so the pipeline has something to do."""
    from satseg.synthetic import make_png_pair, make_scene

    settings.ensure_dirs()
    out = settings.inbox / "demo"
    made = []
    for i in range(3):
        if not (out / f"scene{i}.tif").exists():
            s = make_scene(out, f"scene{i}", 768, 768, seed=i, geojson=False)
            made.append(str(s.image))
    if not (out / "seed_style.png").exists():
        made.append(str(make_png_pair(out, "seed_style", 512, 512, seed=7).image))
    pred = settings.predict_inbox
    if not (pred / "big_scene.tif").exists():
        made.append(
            str(
                make_scene(
                    pred, "big_scene", 1536, 1536, seed=11, labelme=False, geojson=False
                ).image
            )
        )
    return made


def start(settings: Settings, wait_s: float = 180.0) -> int:
    settings.ensure_dirs()
    pf = _pidfile(settings)
    if pf.exists() and _alive(int(pf.read_text())):
        print(f"already running (pid {pf.read_text()}); `make stop` first")
        return 1
    env = airflow_env(settings)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    made = seed_inbox(settings)
    print(f"inbox seeded: {len(made)} new file(s) under {settings.inbox}")
    log = settings.home / "airflow" / "standalone.log"
    airflow = str(Path(sys.executable).parent / "airflow")
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [airflow, "standalone"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `stop` reaps every child
        )
    pf.write_text(str(proc.pid))
    print(f"airflow standalone started (pid {proc.pid}), log: {log}")
    deadline = time.time() + wait_s
    h = None
    while time.time() < deadline:
        if proc.poll() is not None:
            print(f"airflow exited with {proc.returncode}; see {log}")
            return 1
        h = health(settings.api_port)
        if h and h.get("metadatabase", {}).get("status") == "healthy":
            break
        time.sleep(2)
    if not h:
        print(f"Airflow did not answer within {wait_s:.0f}s; see {log}; stopping it")
        stop(settings)
        return 1
    url = f"http://localhost:{settings.api_port}"
    print(f"Airflow UI:   {url}")
    print(f"Login:        admin / {admin_password(settings) or '(see standalone.log)'}")
    print(f"Health:       curl {url}{HEALTH}")
    print(f"MLflow store: {settings.tracking_uri}  (mlflow ui --backend-store-uri <that>)")
    print(f"Predictions:  {settings.predictions}")
    print(f"Reports:      {settings.reports}")
    print("Stop with:    make stop")
    return 0


def stop(settings: Settings, timeout: float = 40.0) -> int:
    pf = _pidfile(settings)
    if not pf.exists():
        print("not running")
        return 0
    pid = int(pf.read_text())
    if _alive(pid):
        os.kill(pid, signal.SIGINT)  # standalone shuts its components down only on SIGINT
        deadline = time.time() + timeout
        while time.time() < deadline and _alive(pid):
            time.sleep(0.5)
    for sig in (signal.SIGTERM, signal.SIGKILL):  # reap anything left in the group
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        time.sleep(2)
    pf.unlink(missing_ok=True)
    print(f"stopped airflow (pid {pid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    cmd = args[0] if args else "start"
    s = get_settings()
    if cmd == "start":
        return start(s)
    if cmd == "stop":
        return stop(s)
    if cmd == "status":
        print(json.dumps(status(s), indent=2))
        return 0
    print("usage: python -m satseg.demo start|stop|status")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
