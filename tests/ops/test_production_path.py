"""The production path on real services: Airflow on PostgreSQL, Celery workers on Redis.

One stack per module, set up the way docker-compose.yaml sets it up: databases from
docker/postgres-init (non-superuser owners), docker/airflow-init.sh (migrate + FAB admin),
then api-server, dag-processor, scheduler and a Celery worker as separate processes.
``satseg_ingest`` runs on generated data through scheduler and worker; the worker is
SIGKILLed (with its task processes) mid-run and restarted, and the run must still succeed
with every dropped file accounted for exactly once. A scheduler with LocalExecutor on the
same database does a run of its own first (one scheduler start per executor).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.ops.procs import BIN, REPO, Procs, free_port, http, wait_for
from tests.ops.services import Databases, free_redis_db, fresh_databases, require_services

pytestmark = [pytest.mark.services, pytest.mark.slow]

DAG = "satseg_ingest"
TERMINAL = {"success", "failed"}


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    procs: Procs
    dbs: Databases
    home: Path
    token: str
    queue: str
    runs_seen: set[str] = field(default_factory=set)

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        import psycopg2

        conn = psycopg2.connect(self.dbs.url("airflow", driver="postgresql"))
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        status, out = http(method, self.base + path, body, token=self.token)
        assert status < 300, (method, path, status, out)
        return out

    def trigger(self) -> str:
        out = self.api("POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": {}})
        return str(out["dag_run_id"])

    def task_states(self, run_id: str) -> list[tuple[str, int, str | None, int]]:
        return [
            (r[0], r[1], r[2], r[3])
            for r in self.sql(
                "SELECT task_id, map_index, state, try_number FROM task_instance "
                "WHERE dag_id = %s AND run_id = %s ORDER BY task_id, map_index",
                DAG,
                run_id,
            )
        ]

    def wait_all_runs_done(self, timeout: float) -> dict[str, str]:
        """Every run of the DAG (manual and any the cron created) in a final state."""

        def done() -> dict[str, str] | None:
            runs = dict(self.sql("SELECT run_id, state FROM dag_run WHERE dag_id = %s", DAG))
            return runs if runs and set(runs.values()) <= TERMINAL else None

        return dict(wait_for("all satseg_ingest runs to finish", done, timeout, 1.0, self.procs))


def _env(root: Path, dbs: Databases, redis_db: int, port: int, queue: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    home = root / "airflow"
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # what docker-compose.yaml sets, pointed at the loopback services
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",  # CeleryExecutor per scheduler below
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
            ),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dbs.url("airflow"),
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + dbs.url("airflow", driver="postgresql"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # test-only: keep the runs under our control and the stack small
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "15",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            # a task the killed worker had reserved but not started stays "queued": requeue it
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW_ADMIN_USERNAME": "admin",
            "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "SATSEG_HOME": str(root / "satseg"),
            "SATSEG_STABLE_POLLS_S": "0.2",
        }
    )
    return env


def _require_celery_executor() -> None:
    """Fail fast, and say why, when the locked Celery cannot run Airflow's CeleryExecutor."""
    import celery

    try:
        import airflow.providers.celery.executors.celery_executor_utils  # noqa: F401
    except ImportError as e:
        pytest.fail(
            f"CeleryExecutor cannot be imported with celery {celery.__version__} from "
            f"requirements.lock ({e}). apache-airflow-providers-celery imports "
            "celery.backends.database.retry, removed in celery 5.7: pin celery<5.7 and re-lock."
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    require_services(redis=True)
    root = tmp_path_factory.mktemp("prod")
    queue = f"satseg-test-{secrets.token_hex(4)}"
    port = free_port()
    with fresh_databases("prod") as dbs, free_redis_db() as redis_db:
        env = _env(root, dbs, redis_db, port, queue)
        init = subprocess.run(
            ["bash", str(REPO / "docker" / "airflow-init.sh")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
        assert "FAB: admin user 'admin' created" in init.stdout
        procs = Procs(root / "logs", env)
        base = f"http://127.0.0.1:{port}"
        try:
            procs.airflow("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
            procs.airflow("dag-processor", "dag-processor")
            wait_for(
                "api-server",
                lambda: http("GET", base + "/api/v2/monitor/health", timeout=3)[0] == 200,
                180,
                1.0,
                procs,
            )
            status, body = http(
                "POST",
                base + "/auth/token",
                {"username": "admin", "password": env["AIRFLOW_ADMIN_PASSWORD"]},
            )
            assert status in (200, 201), body
            s = Stack(base, env, procs, dbs, Path(env["SATSEG_HOME"]), body["access_token"], queue)
            wait_for(
                f"{DAG} parsed",
                lambda: http("GET", f"{base}/api/v2/dags/{DAG}", token=s.token)[0] == 200,
                120,
                1.0,
                procs,
            )
            s.api("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": False})
            yield s
        finally:
            procs.stop_all()
            _assert_no_strays(procs)


def _start_worker(procs: Procs, queue: str, env: dict[str, str]) -> None:
    procs.airflow(
        "worker",
        "celery",
        "worker",
        "-q",
        queue,
        "--skip-serve-logs",
        "--without-mingle",
        "--without-gossip",
        env=env,
    )


def _assert_no_strays(procs: Procs) -> None:
    import psutil

    mine = {p.pid for p in procs.procs.values()}
    left = [p for p in psutil.process_iter(["pid", "ppid", "cmdline"]) if p.info["ppid"] in mine]
    assert not left, f"processes left behind: {[p.info for p in left]}"
    assert not any(procs.group_alive(n) for n in procs.procs), "a process group is still alive"


def _drop_scenes(home: Path, dataset: str, seed: int) -> dict[str, int]:
    """Two good GeoTIFF+LabelMe pairs and a pair whose TIFF is truncated; {sha256: size}."""
    from satseg.io.atomic import move
    from satseg.synthetic import make_scene

    staging = home / "staging" / dataset
    for i in range(2):
        # scene 0 spans three 512-row GeoTIFF block rows: the task forks a patch worker
        h = 1100 if i == 0 else 256
        make_scene(staging, f"{dataset}_{i}", width=256, height=h, seed=seed + i, geojson=False)
    good = staging / f"{dataset}_0.tif"
    (staging / f"{dataset}_broken.tif").write_bytes(good.read_bytes()[:300])
    labels = json.loads((staging / f"{dataset}_0.json").read_text())
    labels["imagePath"] = f"{dataset}_broken.tif"  # its own content, not a duplicate
    (staging / f"{dataset}_broken.json").write_text(json.dumps(labels))
    dropped = {}
    for f in sorted(staging.iterdir()):
        dropped[hashlib.sha256(f.read_bytes()).hexdigest()] = f.stat().st_size
        move(f, home / "inbox" / dataset / f.name)
    return dropped


def _assert_accounted(home: Path, dropped: dict[str, int]) -> None:
    """Each dropped file exists exactly once in inbox, raw or quarantine: none lost, none doubled."""
    seen: dict[str, int] = {}
    for area in ("inbox", "raw", "quarantine"):
        for f in (home / area).rglob("*"):
            if f.is_file() and f.stat().st_size:
                digest = hashlib.sha256(f.read_bytes()).hexdigest()
                if digest in dropped:
                    seen[digest] = seen.get(digest, 0) + 1
    assert seen == dict.fromkeys(dropped, 1), "dropped files lost or duplicated"
    assert not [p for p in (home / "inbox").rglob("*") if p.is_file()], "files left in the inbox"


def _assert_ingested(home: Path, dataset: str) -> None:
    """Good pairs processed and versioned once; the broken pair quarantined with its reason."""
    from satseg.config import get_settings
    from satseg.versioning import list_versions

    assert (home / "processed" / dataset / "manifest.json").is_file(), "no processed output"
    raw = sorted(p.name for p in (home / "raw" / dataset).glob(f"{dataset}_*.tif"))
    assert raw == [f"{dataset}_0.tif", f"{dataset}_1.tif"]
    tags = [v.tag for v in list_versions(get_settings(home=home), dataset)]
    assert tags == [f"{dataset}-v1"], f"expected exactly one new version, got {tags}"
    errors = [p.name for p in (home / "quarantine").rglob(f"{dataset}_broken*.error.json")]
    assert errors, "the truncated TIFF was not quarantined with an error record"
    # the tall scene's patches come from this task's process and its forked worker: all rows
    index = json.loads(
        (home / "processed" / ".scenes" / dataset / f"{dataset}_0" / "scene.json").read_text()
    )
    assert sorted({p["row"] for p in index["patches"]}) == [0, 256, 512, 768]  # 1024: padding


def _assert_runs_ok(stack: Stack, runs: dict[str, str]) -> None:
    assert set(runs.values()) == {"success"}, (runs, stack.procs.tails())
    for run_id in runs:
        states = {t[2] for t in stack.task_states(run_id)}
        # a run that found the inbox empty (e.g. the cron's) skips its mapped tasks
        assert states <= {"success", "skipped"}, (run_id, stack.task_states(run_id))


def test_local_executor_on_postgres(stack: Stack) -> None:
    procs = stack.procs
    procs.airflow("scheduler-local", "scheduler")
    dropped = _drop_scenes(stack.home, "local_ds", seed=20)
    stack.trigger()
    _assert_runs_ok(stack, stack.wait_all_runs_done(240))
    _assert_accounted(stack.home, dropped)
    _assert_ingested(stack.home, "local_ds")
    assert stack.sql("SELECT version()")[0][0].startswith("PostgreSQL")
    procs.stop("scheduler-local")
    # the REST plugin behind the FAB auth manager, reporting the PostgreSQL metadata DB
    assert http("GET", stack.base + "/satseg/health")[0] == 401
    status, body = http("GET", stack.base + "/satseg/health", token=stack.token)
    assert status == 200, body
    assert body["checks"]["metadata_db"]["dialect"] == "postgresql"
    status, body = http("GET", stack.base + "/satseg/datasets", token=stack.token)
    assert (
        status == 200
        and {d["name"]: d["latest_version"] for d in body}["local_ds"] == "local_ds-v1"
    )


def test_celery_run_survives_a_killed_worker(stack: Stack) -> None:
    _require_celery_executor()
    procs = stack.procs
    celery_env = {**stack.env, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    procs.airflow("scheduler-celery", "scheduler", env=celery_env)
    _start_worker(procs, stack.queue, celery_env)
    dropped = _drop_scenes(stack.home, "celery_ds", seed=10)
    stack.trigger()

    def processing() -> list[tuple[Any, ...]]:
        return stack.sql(
            "SELECT run_id, task_id, map_index FROM task_instance WHERE dag_id = %s "
            "AND task_id = 'process' AND state = 'running'",
            DAG,
        )

    # SIGKILL the worker and its task processes while a scene is being processed
    victim = wait_for("a running process task", processing, 240, 0.1, procs)[0]
    killed = procs.kill_tree("worker")
    assert len(killed) >= 2  # the worker and at least the process running the task
    _start_worker(procs, stack.queue, celery_env)
    runs = stack.wait_all_runs_done(300)
    _assert_runs_ok(stack, runs)
    state, tries = stack.sql(
        "SELECT state, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s "
        "AND task_id = %s AND map_index = %s",
        DAG,
        *victim,
    )[0]
    assert (state, tries) == ("success", 2), (
        f"killed task {victim} ended {state} after {tries} tries"
    )
    _assert_accounted(stack.home, dropped)
    _assert_ingested(stack.home, "celery_ds")
    # the tasks really ran on Celery: their results are in the result backend (metadata DB)
    assert stack.sql("SELECT count(*) FROM celery_taskmeta")[0][0] >= 4
