"""Housekeeping: old task logs and old Airflow metadata rows go, on a schedule.

Airflow keeps every task log file and every DAG run, task instance, XCom and event-log row
forever; after weeks the log volume and the metadata DB grow without bound and the UI slows.
``housekeep`` (the ``satseg_housekeeping`` DAG, ``satseg ops prune``) deletes log files older
than ``SATSEG_LOG_RETENTION_DAYS`` and empty folders under the log folder, and runs
``airflow db clean`` (the Airflow CLI, no Airflow import here) for rows older than
``SATSEG_DB_RETENTION_DAYS``, without archive tables (they would grow instead).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.errors import BadInput, SatsegError


@dataclass
class PruneReport:
    folder: str
    files: int = 0
    bytes: int = 0
    dirs: int = 0
    kept: int = 0
    dry_run: bool = False


def log_folder(env: Mapping[str, str] | None = None) -> Path:
    """Airflow's base log folder, resolved as Airflow does from its environment."""
    env = os.environ if env is None else env
    if env.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER"):
        return Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    home = env.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "logs"


def prune_logs(
    folder: Path, older_than_days: int, now: datetime | None = None, dry_run: bool = False
) -> PruneReport:
    """Delete regular files under ``folder`` not modified for ``older_than_days``, then the
    folders that became empty (``folder`` itself stays). Symlinks are never followed."""
    if older_than_days < 1:
        raise BadInput(f"log retention must be at least 1 day, got {older_than_days}")
    report = PruneReport(folder=str(folder), dry_run=dry_run)
    if not folder.is_dir():
        return report
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=older_than_days)).timestamp()
    for dirpath, _dirs, filenames in os.walk(folder, topdown=False):
        d = Path(dirpath)
        for name in filenames:
            p = d / name
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_mtime >= cutoff:  # lstat: links kept
                report.kept += 1
                continue
            report.files += 1
            report.bytes += st.st_size
            if not dry_run:
                p.unlink(missing_ok=True)
        if d != folder and not dry_run:
            try:
                d.rmdir()  # only succeeds when empty
                report.dirs += 1
            except OSError:
                pass
    return report


def clean_db_command(
    older_than_days: int, now: datetime | None = None, dry_run: bool = False
) -> list[str]:
    """The ``airflow db clean`` command line for rows older than ``older_than_days``."""
    if older_than_days < 1:
        raise BadInput(f"metadata retention must be at least 1 day, got {older_than_days}")
    before = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    cmd = [
        str(Path(sys.executable).parent / "airflow"),
        "db",
        "clean",
        "--clean-before-timestamp",
        before.isoformat(timespec="seconds"),
        "--skip-archive",
        "--yes",
    ]
    return [*cmd, "--dry-run"] if dry_run else cmd


def clean_db(
    older_than_days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Run ``airflow db clean`` against the configured metadata DB; fail with its output."""
    cmd = clean_db_command(older_than_days, now, dry_run)
    r = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=dict(os.environ if env is None else env),
        timeout=timeout,
        check=False,
    )
    if r.returncode != 0:
        raise SatsegError(f"airflow db clean failed ({r.returncode}): {r.stderr[-2000:]}")
    return {"command": cmd[1:], "dry_run": dry_run, "output": r.stdout[-4000:]}


def housekeep(
    settings: Settings,
    dry_run: bool = False,
    logs: Path | None = None,
    db: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Prune the log folder and (``db``) the metadata DB by the configured retentions."""
    report = prune_logs(logs or log_folder(), settings.log_retention_days, now, dry_run)
    out: dict[str, Any] = {"logs": asdict(report)}
    if db:
        out["db"] = clean_db(settings.db_retention_days, now, dry_run)
    return out
