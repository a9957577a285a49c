"""Housekeeping (issue 20 defect 7): old logs and old metadata rows go, nothing else does."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from satseg.errors import BadInput
from satseg.ops import housekeeping as hk

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _file(path: Path, age_days: float, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    t = (NOW - timedelta(days=age_days)).timestamp()
    os.utime(path, (t, t))
    return path


def _log_tree(root: Path, outside: Path) -> dict[str, Path]:
    run = root / "dag_id=satseg_ingest" / "run_id=scheduled__2026-04-01"
    files = {
        "old": _file(run / "task_id=scan" / "attempt=1.log", 45),
        "old2": _file(run / "task_id=pack" / "attempt=1.log", 31, 250),
        "new": _file(root / "dag_id=satseg_ingest" / "run_id=manual__x" / "attempt=1.log", 2),
        "proc": _file(root / "dag_processor" / "2026-05-31" / "dags.log", 1),
        "target": _file(outside / "keep.log", 90),
    }
    link = root / "linked.log"
    link.symlink_to(files["target"])
    os.utime(link, (0, 0), follow_symlinks=False)
    files["link"] = link
    return files


def test_prune_logs_deletes_old_files_and_emptied_folders(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    f = _log_tree(root, tmp_path / "elsewhere")
    dry = hk.prune_logs(root, 30, now=NOW, dry_run=True)
    assert (dry.files, dry.bytes, dry.dirs) == (2, 350, 0)
    assert f["old"].exists() and f["old2"].exists()  # a dry run deletes nothing
    report = hk.prune_logs(root, 30, now=NOW)
    assert (report.files, report.bytes, report.kept) == (2, 350, 3)
    assert not f["old"].exists() and not f["old2"].exists()
    assert not (root / "dag_id=satseg_ingest" / "run_id=scheduled__2026-04-01").exists()
    assert f["new"].exists() and f["proc"].exists()
    assert f["link"].is_symlink() and f["target"].exists()  # links are not followed
    assert root.is_dir()
    again = hk.prune_logs(root, 30, now=NOW)  # idempotent
    assert (again.files, again.dirs) == (0, 0)


def test_prune_logs_bad_input_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="at least 1 day"):
        hk.prune_logs(tmp_path, 0)
    with pytest.raises(BadInput, match="at least 1 day"):
        hk.clean_db_command(0)
    assert hk.prune_logs(tmp_path / "absent", 30).files == 0


def test_log_folder_resolves_like_airflow(tmp_path: Path) -> None:
    assert hk.log_folder({"AIRFLOW__LOGGING__BASE_LOG_FOLDER": "/x/logs"}) == Path("/x/logs")
    assert hk.log_folder({"AIRFLOW_HOME": "/opt/airflow"}) == Path("/opt/airflow/logs")


def test_clean_db_command_line() -> None:
    cmd = hk.clean_db_command(90, now=NOW)
    assert cmd[1:] == [
        "db",
        "clean",
        "--clean-before-timestamp",
        "2026-03-03T12:00:00+00:00",
        "--skip-archive",
        "--yes",
    ]
    assert hk.clean_db_command(90, now=NOW, dry_run=True)[-1] == "--dry-run"


def _event_rows(db: Path, event: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM log WHERE event = ?", (event,)).fetchone()[0]


@pytest.mark.slow
def test_housekeeping_dag_prunes_logs_and_old_metadata_rows(
    settings, airflow_db, tmp_path, monkeypatch
) -> None:
    """The real DAG through dag.test(): `airflow db clean` on the session's metadata DB."""
    from tests.airflow_helpers import load_dag, run_dag

    db = airflow_db / "airflow.db"
    old = (datetime.now(UTC) - timedelta(days=200)).strftime("%Y-%m-%d %H:%M:%S.000000")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO log (dttm, event) VALUES (?, 'satseg-hk-old')", (old,))
        conn.execute(
            "INSERT INTO log (dttm, event) VALUES (?, 'satseg-hk-new')",
            (datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.000000"),),
        )
    logs = Path(os.environ["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    stale = logs / "dag_id=satseg_hk_probe" / "attempt=1.log"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("old\n")
    os.utime(stale, (0, 0))
    dag = load_dag("satseg_housekeeping")
    run_dag(dag, {"dry_run": True}, expect="success")
    assert stale.exists() and _event_rows(db, "satseg-hk-old") == 1
    run_dag(dag, {"dry_run": False}, expect="success")
    assert not stale.exists() and not stale.parent.exists()
    assert _event_rows(db, "satseg-hk-old") == 0
    assert _event_rows(db, "satseg-hk-new") == 1


def test_retention_settings_refuse_nonsense(settings) -> None:
    from pydantic import ValidationError

    from satseg.config import get_settings

    for field in ("log_retention_days", "db_retention_days"):
        with pytest.raises(ValidationError, match=field):
            get_settings(**{field: 0})


def test_cli_prune_logs_only(settings, tmp_path: Path, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from satseg.cli import app

    root = tmp_path / "logs"
    old = _file(root / "dag_id=x" / "attempt=1.log", 10_000)  # ~27 years before NOW
    os.utime(old, (0, 0))
    monkeypatch.setenv("SATSEG_LOG_RETENTION_DAYS", "7")
    from satseg.config import reset_settings_cache

    reset_settings_cache()
    r = CliRunner().invoke(app, ["ops", "prune", "--no-db", "--dry-run", "--logs", str(root)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["logs"]["files"] == 1 and old.exists()
    r = CliRunner().invoke(app, ["ops", "prune", "--no-db", "--logs", str(root)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {
        "logs": {
            "folder": str(root),
            "files": 1,
            "bytes": 100,
            "dirs": 1,
            "kept": 0,
            "dry_run": False,
        }
    }
    assert not old.exists()
