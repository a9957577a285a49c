"""The embedded deployment: Airflow standalone on SQLite + local MLflow store, one command.

``python -m satseg.demo start`` is what ``make demo`` runs; ``stop`` ends every process it
started. Airflow's standalone only shuts down cleanly on SIGINT, so it is started in its own
session (process group) and stopped with SIGINT, then the group is reaped.

Nothing of it is open to other accounts or hosts by default (``prepare_home``): AIRFLOW_HOME
is 0700; the metadata DB, the admin password, the secrets and every log are created 0600;
the API server/UI listens on ``SATSEG_API_HOST`` (127.0.0.1). Airflow 3.3's log servers
(:8793 scheduler, :8794 triggerer) always bind every interface (no host option), and on one
machine the API server reads the task logs from disk anyway, so they are not started unless
``SATSEG_AIRFLOW_LOG_SERVERS=true``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from satseg.config import REPO_ROOT, Settings, get_settings

HEALTH = "/api/v2/monitor/health"
# Marks every process of one embedded deployment (inherited by all it spawns): `stop` finds
# by it a task process that left the standalone's session.
DEPLOYMENT_VAR = "SATSEG_DEMO_DEPLOYMENT"


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
            "AIRFLOW__API__HOST": settings.api_host,
            "AIRFLOW__API__PORT": str(settings.api_port),
            # task logs: only this account (Airflow's default is 0o664 / 0o775)
            "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o600",
            "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o700",
            "SATSEG_PARAMS_FILE": str(settings.params_file),
            DEPLOYMENT_VAR: str(home),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{settings.api_port}",
            "SM_FRAMEWORK": "tf.keras",
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # standalone spawns `airflow` from PATH: make it this environment's (through
            # the shim that skips the log servers, unless they are asked for)
            "PATH": os.pathsep.join(
                (
                    *(() if settings.airflow_log_servers else (str(home / "bin"),)),
                    str(Path(sys.executable).parent),
                    env.get("PATH", ""),
                )
            ),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
            ),
        }
    )
    env.update(_secrets(home))
    return env


PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"  # Airflow's default name
# standalone runs `airflow scheduler` and `airflow triggerer` with no way to pass flags
_SHIM = """#!/bin/sh
# written by satseg.demo: Airflow's log servers bind every interface (no host option)
case "$1" in
  scheduler|triggerer) exec {airflow} "$@" --skip-serve-logs ;;
esac
exec {airflow} "$@"
"""


def _create_private(path: Path, text: str = "", mode: int = 0o600) -> bool:
    """Create ``path`` with ``mode`` from the start (never readable by others in between)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return True


def prepare_home(settings: Settings) -> Path:
    """Create the demo's AIRFLOW_HOME so that only this account can read anything in it.

    Files Airflow would create world-readable are made first, 0600: the SQLite DB (SQLite
    gives its journal the DB's mode) and the admin password, generated here so that Airflow
    never prints it into ``standalone.log``. A home from an older demo is tightened.
    """
    import secrets

    home = settings.home / "airflow"
    for d in (home, home / "logs", home / "bin"):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        d.chmod(0o700)
    _create_private(home / "airflow.db")
    _create_private(home / PASSWORDS_FILE, json.dumps({"admin": secrets.token_urlsafe(16)}))
    for f in (home / "airflow.db", home / PASSWORDS_FILE, home / "standalone.log"):
        if f.exists():
            f.chmod(0o600)
    shim = home / "bin" / "airflow"
    text = _SHIM.format(airflow=shlex.quote(str(Path(sys.executable).parent / "airflow")))
    if not shim.exists() or shim.read_text() != text:
        shim.unlink(missing_ok=True)
        _create_private(shim, text, mode=0o700)
    return home


def _secrets(home: Path) -> dict[str, str]:
    """Per-installation secrets every Airflow component must share (JWT, session, Fernet).

    Left unset, each component invents its own and the API server rejects the tasks' tokens.
    Kept in AIRFLOW_HOME (mode 600), never in the committed airflow.cfg.
    """
    import secrets

    from cryptography.fernet import Fernet

    f = home / "secrets.json"
    if f.exists():
        return dict(json.loads(f.read_text()))
    data = {
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
    }
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    return data


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
    f = settings.home / "airflow" / PASSWORDS_FILE
    if f.exists():
        return json.loads(f.read_text()).get("admin")
    return None


def seed_inbox(settings: Settings) -> list[str]:
    """Drop generated labelled scenes (GeoTIFF+LabelMe, GeoTIFF+GeoJSON, PNG+LabelMe)."""
    from satseg.synthetic import make_png_pair, make_scene

    settings.ensure_dirs()
    out = settings.inbox / "demo"
    made: list[str] = []
    if (settings.raw / "demo").exists():
        return made  # already ingested by an earlier demo run
    for i in range(3):
        if not (out / f"scene{i}.tif").exists():
            s = make_scene(out, f"scene{i}", 768, 768, seed=i, geojson=(i == 2), labelme=(i != 2))
            made.append(str(s.image))
    if not (out / "seed_style.png").exists():
        made.append(str(make_png_pair(out, "seed_style", 512, 512, seed=7).image))
    for p in out.iterdir():
        if not p.name.endswith(".done"):
            (p.parent / f"{p.name}.done").touch()  # complete: no need to wait two polls
    return made


def seed_predict_inbox(settings: Settings) -> list[str]:
    """Scenes to segment: one like the training data, one that looks different (drift)."""
    from satseg.synthetic import SceneStyle, make_scene

    pred = settings.predict_inbox
    made: list[str] = []
    for name, seed, style in (
        ("city_scene", 11, SceneStyle()),
        ("desert_scene", 12, SceneStyle(land_cover="desert", brightness=40, contrast=1.3)),
    ):
        if not (settings.predictions / name).exists():
            s = make_scene(
                pred, name, 1536, 1536, seed=seed, style=style, labelme=False, geojson=False
            )
            (pred / f"{s.image.name}.done").touch()
            made.append(str(s.image))
    return made


class AirflowClient:
    """Just enough of Airflow's REST API (v2) to drive and watch the demo's DAG runs."""

    def __init__(self, port: int, password: str) -> None:
        import httpx

        self.base = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{self.base}/auth/token", json={"username": "admin", "password": password})
        r.raise_for_status()
        self.http = httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
            timeout=30,
        )

    def wait_dag(self, dag_id: str, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.http.get(f"/api/v2/dags/{dag_id}").status_code == 200:
                return
            time.sleep(3)
        raise TimeoutError(f"{dag_id} was not parsed within {timeout:.0f}s")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.http.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        r = self.http.post(
            f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        r.raise_for_status()
        return str(r.json()["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        r = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"order_by": "-run_after"})
        r.raise_for_status()
        return list(r.json()["dag_runs"])

    def wait_run(
        self, dag_id: str, run_id: str | None = None, after: str = "", timeout: float = 1200
    ) -> dict[str, Any]:
        """Wait for ``run_id`` (or the newest run created after ``after``) to finish."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for run in self.runs(dag_id):
                if run_id and run["dag_run_id"] != run_id:
                    continue
                if not run_id and str(run.get("run_after") or "") <= after:
                    continue
                if run["state"] in ("success", "failed"):
                    return run
                break
            time.sleep(5)
        raise TimeoutError(f"{dag_id} run did not finish within {timeout:.0f}s")


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def follow_loop(settings: Settings) -> int:
    """ingest -> retrain (Asset) -> predict -> monitor (Asset) -> drift -> retrain (Asset)."""
    client = AirflowClient(settings.api_port, admin_password(settings) or "")
    for dag_id in ("satseg_ingest", "satseg_retrain", "satseg_predict", "satseg_monitor"):
        client.wait_dag(dag_id)
    t0 = _now_iso()
    steps: list[tuple[str, dict[str, Any]]] = []
    run = client.wait_run("satseg_ingest", client.trigger("satseg_ingest"))
    steps.append(("satseg_ingest (manual)", run))
    print(f"  ingest:   {run['state']}")
    if run["state"] != "success":
        return 1
    run = client.wait_run("satseg_retrain", after=t0)  # scheduled by satseg://processed
    steps.append(("satseg_retrain (Asset satseg://processed)", run))
    print(f"  retrain:  {run['state']} ({run['run_type']})")
    if run["state"] != "success":
        return 1
    t1 = _now_iso()
    seed_predict_inbox(settings)
    run = client.wait_run("satseg_predict", client.trigger("satseg_predict"))
    print(f"  predict:  {run['state']}")
    if run["state"] != "success":
        return 1
    run = client.wait_run("satseg_monitor", after=t1)  # scheduled by satseg://predictions
    print(f"  monitor:  {run['state']} ({run['run_type']})")
    drift_runs: list[dict[str, Any]] = []
    for _ in range(12):  # the scheduler turns the drift event into a retrain run shortly
        drift_runs = [
            r
            for r in client.runs("satseg_retrain")
            if r["run_type"] == "asset_triggered" and str(r.get("run_after") or "") > t1
        ]
        if drift_runs:
            break
        time.sleep(5)
    print(
        "  drift:    detected; satseg_retrain scheduled by satseg://drift"
        if drift_runs
        else "  drift:    none detected"
    )
    reports = sorted(settings.reports.rglob("*.html"))
    print("Where to look:")
    print(
        f"  Airflow UI    http://localhost:{settings.api_port}  (admin / "
        f"{admin_password(settings)})"
    )
    print(
        f"  MLflow UI     {Path(sys.executable).parent / 'mlflow'} ui --backend-store-uri "
        f"{settings.tracking_uri}"
    )
    print(f"  predictions   {settings.predictions}")
    print(f"  latest report {reports[-1] if reports else '(none yet)'}")
    return 0


def start(settings: Settings, wait_s: float = 180.0, follow: bool = True) -> int:
    settings.ensure_dirs()
    pf = _pidfile(settings)
    if pf.exists() and _alive(int(pf.read_text())):
        print(f"already running (pid {pf.read_text()}); `make stop` first")
        return 1
    prepare_home(settings)
    env = airflow_env(settings)
    made = seed_inbox(settings)
    print(f"inbox seeded: {len(made)} new file(s) under {settings.inbox}")
    log = settings.home / "airflow" / "standalone.log"
    airflow = str(Path(sys.executable).parent / "airflow")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "ab") as fh:
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
    print(f"Airflow UI:   {url}  (listening on {settings.api_host})")
    saved = settings.home / "airflow" / PASSWORDS_FILE
    print(f"Login:        admin / {admin_password(settings) or f'(see {saved})'}")
    print(f"Health:       curl {url}{HEALTH}")
    print(f"MLflow store: {settings.tracking_uri}  (mlflow ui --backend-store-uri <that>)")
    print(f"Predictions:  {settings.predictions}")
    print(f"Reports:      {settings.reports}")
    print("Stop with:    make stop")
    if not follow:
        return 0
    print("Running the loop on generated data through the real DAGs (a few minutes on 2 cores):")
    try:
        return follow_loop(settings)
    except Exception as exc:  # the deployment stays up for inspection
        print(f"loop did not complete: {exc}; Airflow is still running (make stop)")
        return 1


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def deployment_processes(leader: int | None, marker: str) -> list[Any]:
    """Live processes of the deployment: the session ``leader`` started (every process group in
    it: Airflow's task supervisor gives each task its own), the leader's descendants, and any
    process carrying ``DEPLOYMENT_VAR=marker`` (one that left the session). Never this process
    or its ancestors."""
    import psutil

    me = psutil.Process()
    spared = {me.pid, *(p.pid for p in me.parents())}
    found: dict[int, Any] = {}
    if leader is not None:
        try:
            found.update({c.pid: c for c in psutil.Process(leader).children(recursive=True)})
        except psutil.NoSuchProcess:
            pass
    for proc in psutil.process_iter():
        if proc.pid in spared or proc.pid in found:
            continue
        try:
            if (leader is not None and _sid(proc.pid) == leader) or proc.environ().get(
                DEPLOYMENT_VAR
            ) == marker:
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return [p for pid, p in sorted(found.items()) if pid not in spared and _running(p)]


def _running(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _leader_running(pid: int) -> bool:
    import psutil

    try:
        return _running(psutil.Process(pid)) and _sid(pid) == pid
    except psutil.Error:
        return False


def _describe(proc: Any) -> str:
    try:
        cmd = " ".join(" ".join(proc.cmdline()).split()) or proc.name()
    except Exception:
        cmd = "?"
    return f"pid {proc.pid} ({cmd[:90]})"


def end_processes(procs: list[Any], grace: float) -> list[str]:
    """SIGTERM every process, SIGKILL what is left after ``grace`` s; one line per process."""
    import psutil

    names = {p.pid: _describe(p) for p in procs}
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    alive = [p for p in alive if _running(p)]
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    killed = {p.pid for p in alive}
    return [
        f"ended {names[p.pid]} with {'SIGKILL' if p.pid in killed else 'SIGTERM'}"
        + (" (still running!)" if _running(p) else "")
        for p in procs
    ]


def stop(settings: Settings, timeout: float = 40.0, grace: float = 10.0) -> int:
    """End every process of the deployment and say which: SIGINT to the standalone (its clean
    shutdown), then SIGTERM to whatever of the deployment is left, SIGKILL after ``grace``.
    Scans again until nothing is left (a task being launched during the stop)."""
    pf = _pidfile(settings)
    pid = int(pf.read_text()) if pf.exists() else None
    marker = str(settings.home / "airflow")
    if pid is not None and _leader_running(pid):
        os.kill(pid, signal.SIGINT)  # standalone shuts its components down only on SIGINT
        deadline = time.time() + timeout
        while time.time() < deadline and _leader_running(pid):
            time.sleep(0.5)
    ended: list[str] = []
    for _ in range(5):
        left = deployment_processes(pid, marker)
        if not left:
            break
        ended += end_processes(left, grace)
    left = deployment_processes(pid, marker)
    pf.unlink(missing_ok=True)
    if pid is None and not ended:
        print("not running")
        return 0
    print(f"stopped airflow (pid {pid})" if pid is not None else "stopped a deployment")
    for line in ended:
        print(f"  {line}")
    if not ended:
        print("  nothing else of the deployment was running")
    for p in left:
        print(f"  STILL RUNNING: {_describe(p)}")
    return 1 if left else 0


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    cmd = args[0] if args else "start"
    s = get_settings()
    if "SATSEG_PARAMS_FILE" not in os.environ:  # short training for the demo
        s = get_settings(params_file=REPO_ROOT / "include" / "params.demo.yaml")
    if cmd == "start":
        return start(s, follow="--no-follow" not in args)
    if cmd == "stop":
        return stop(s)
    if cmd == "status":
        print(json.dumps(status(s), indent=2))
        return 0
    print("usage: python -m satseg.demo start [--no-follow]|stop|status")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
