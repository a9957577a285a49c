"""Health of what satseg depends on: metadata DB, MLflow, DVC remote, disk, Redis.

Each check returns ``{"status": "ok" | "error" | "skipped", ...details}`` and never raises,
so one broken dependency is reported next to the healthy ones instead of hiding them.
Credentials never appear in the details (URLs are redacted).
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from satseg.config import Settings
from satseg.params import ApiParams, default_of

Check = dict[str, Any]
DEFAULT_MIN_FREE_MB: int = default_of(ApiParams, "min_free_disk_mb")
DEFAULT_TIMEOUT_S: float = default_of(ApiParams, "health_timeout_s")


def redact(url: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user:***@host/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _timed(fn: Callable[[], Check]) -> Check:
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as e:  # a health check reports, it does not raise
        out = {"status": "error", "error": f"{type(e).__name__}: {e}"}
    out["ms"] = round((time.perf_counter() - start) * 1000, 1)
    return out


def metadata_db() -> Check:
    """Airflow's metadata database answers a trivial query."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        session.execute(text("SELECT 1"))
        dialect = session.get_bind().dialect.name
    return {"status": "ok", "dialect": dialect}


def mlflow(uri: str, timeout: float = DEFAULT_TIMEOUT_S) -> Check:
    """A tracking server answers /health; a file store is a writable folder."""
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            body = r.read(64).decode(errors="replace").strip()
        return {"status": "ok", "uri": redact(uri), "response": body}
    if scheme in ("file", ""):
        path = Path(urlsplit(uri).path if scheme else uri)
        return _writable_dir(path) | {"uri": uri}
    return {"status": "skipped", "uri": redact(uri), "reason": f"{scheme} store not probed"}


def dvc_remote(url: str) -> Check:
    """A local remote must be a writable folder (or creatable); others are reported only."""
    scheme = urlsplit(url).scheme
    if scheme in ("", "file"):
        return _writable_dir(Path(urlsplit(url).path if scheme else url)) | {"url": url}
    return {"status": "skipped", "url": redact(url), "reason": f"{scheme} remote not probed"}


def _writable_dir(path: Path) -> Check:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return {"status": "error", "error": f"{probe} is not a directory"}
    if not os.access(probe, os.W_OK | os.X_OK):
        return {"status": "error", "error": f"{probe} is not writable"}
    return {"status": "ok", "exists": path.exists()}


def disk(path: Path, min_free_mb: int = DEFAULT_MIN_FREE_MB) -> Check:
    """Free space where SATSEG_HOME lives; ingest and training fail badly on a full disk."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    free_mb = usage.free // (1024 * 1024)
    ok = free_mb >= min_free_mb
    return {
        "status": "ok" if ok else "error",
        "path": str(path),
        "free_mb": free_mb,
        "total_mb": usage.total // (1024 * 1024),
        "min_free_mb": min_free_mb,
    } | ({} if ok else {"error": f"only {free_mb} MB free, below {min_free_mb} MB"})


def redis_broker(broker_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> Check:
    import redis

    client = redis.Redis.from_url(
        broker_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"status": "ok", "url": redact(broker_url)}


def celery_broker_url() -> str | None:
    """The Redis broker URL when this deployment runs Celery workers, else None."""
    from airflow.configuration import conf

    executors = conf.get("core", "executor", fallback="") or ""
    if "Celery" not in executors:
        return None
    url = conf.get("celery", "broker_url", fallback="") or ""
    return url if url.startswith(("redis://", "rediss://")) else None


def run_checks(settings: Settings, api_params: ApiParams | None = None) -> tuple[bool, Check]:
    """All checks; healthy when none is in error (skipped ones do not count)."""
    p = api_params or ApiParams()
    timeout = p.health_timeout_s
    checks: dict[str, Check] = {
        "metadata_db": _timed(metadata_db),
        "mlflow": _timed(lambda: mlflow(settings.tracking_uri, timeout)),
        "dvc_remote": _timed(lambda: dvc_remote(settings.dvc_remote_url)),
        "disk": _timed(lambda: disk(settings.home, p.min_free_disk_mb)),
    }
    try:
        broker = celery_broker_url()
    except Exception:  # no Airflow config: nothing says Celery is in use
        broker = None
    if broker:
        checks["redis"] = _timed(lambda: redis_broker(broker, timeout))
    healthy = all(c["status"] != "error" for c in checks.values())
    return healthy, {"status": "ok" if healthy else "unhealthy", "checks": checks}
