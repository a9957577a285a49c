"""Loopback PostgreSQL / Redis for the production-path tests: fresh, uniquely named, removed.

Databases and roles are created by docker/postgres-init (the script the compose stack runs),
so the tests also prove that script and run Airflow/MLflow as non-superuser owners.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.ops.procs import REPO, reachable

PG_HOST, PG_PORT, PG_SUPERUSER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
INIT_SQL = REPO / "docker" / "postgres-init" / "10-satseg-databases.sh"


def require_services(redis: bool = False) -> None:
    if not reachable(PG_HOST, PG_PORT):
        pytest.skip(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    if shutil.which("psql") is None:
        pytest.skip("the psql client is not installed (docker/postgres-init runs it)")
    if redis and not reachable(REDIS_HOST, REDIS_PORT):
        pytest.skip(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}")


def _admin():
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_SUPERUSER, dbname="postgres")
    conn.autocommit = True
    return conn


@dataclass(frozen=True)
class Databases:
    airflow_user: str
    airflow_db: str
    mlflow_user: str
    mlflow_db: str
    password: str

    def url(self, which: str, driver: str = "postgresql+psycopg2") -> str:
        user, db = (
            (self.airflow_user, self.airflow_db)
            if which == "airflow"
            else (self.mlflow_user, self.mlflow_db)
        )
        return f"{driver}://{user}:{self.password}@{PG_HOST}:{PG_PORT}/{db}"


@contextmanager
def fresh_databases(tag: str) -> Iterator[Databases]:
    """Run docker/postgres-init with unique names; drop everything afterwards."""
    suffix = f"{tag}_{secrets.token_hex(4)}"
    dbs = Databases(
        f"satseg_af_{suffix}",
        f"satseg_af_{suffix}",
        f"satseg_ml_{suffix}",
        f"satseg_ml_{suffix}",
        secrets.token_urlsafe(16),
    )
    env = dict(os.environ)
    env.update(
        {
            "PGHOST": PG_HOST,
            "PGPORT": str(PG_PORT),
            "POSTGRES_USER": PG_SUPERUSER,
            "POSTGRES_DB": "postgres",
            "AIRFLOW_DB_USER": dbs.airflow_user,
            "AIRFLOW_DB_PASSWORD": dbs.password,
            "AIRFLOW_DB": dbs.airflow_db,
            "MLFLOW_DB_USER": dbs.mlflow_user,
            "MLFLOW_DB_PASSWORD": dbs.password,
            "MLFLOW_DB": dbs.mlflow_db,
        }
    )
    try:
        subprocess.run(["bash", str(INIT_SQL)], env=env, check=True, capture_output=True)
        yield dbs
    finally:
        drop_databases(dbs)


def drop_databases(dbs: Databases) -> None:
    conn = _admin()
    try:
        with conn.cursor() as cur:
            for db in (dbs.airflow_db, dbs.mlflow_db):
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            for role in (dbs.airflow_user, dbs.mlflow_user):
                cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        conn.close()


def database_exists(name: str) -> bool:
    conn = _admin()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone() is not None
    finally:
        conn.close()


@contextmanager
def free_redis_db() -> Iterator[int]:
    """An empty Redis database number (1-15), flushed afterwards."""
    import redis

    for n in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n)
        if client.dbsize() == 0:
            break
        client.close()
    else:
        pytest.skip("no empty Redis database number left")
    try:
        yield n
    finally:
        client.flushdb()
        client.close()
