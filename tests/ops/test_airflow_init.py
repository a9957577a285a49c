"""The airflow-init job's pieces and docker/postgres-init, run for real."""

from __future__ import annotations

import json
import stat

import pytest

from tests.airflow_helpers import load_module
from tests.ops.procs import REPO
from tests.ops.services import database_exists, fresh_databases, require_services


@pytest.fixture(scope="module")
def init():
    return load_module("airflow_init", REPO / "docker" / "airflow_init.py")


def test_admin_password_must_be_set_and_not_weak(init) -> None:
    with pytest.raises(SystemExit, match="AIRFLOW_ADMIN_USERNAME"):
        init.admin_from_env({"AIRFLOW_ADMIN_PASSWORD": "x" * 20})
    for weak in ("", "short", "airflow", "administrator"):
        with pytest.raises(SystemExit, match="at least 12"):
            init.admin_from_env(
                {"AIRFLOW_ADMIN_USERNAME": "administrator", "AIRFLOW_ADMIN_PASSWORD": weak}
            )
    assert init.admin_from_env(
        {"AIRFLOW_ADMIN_USERNAME": "ops", "AIRFLOW_ADMIN_PASSWORD": "a-long-enough-one"}
    ) == ("ops", "a-long-enough-one")


def test_simple_auth_manager_password_file(init, tmp_path, monkeypatch) -> None:
    pw = tmp_path / "passwords.json"
    pw.write_text(json.dumps({"viewer": "kept-as-is"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(pw))
    out = init.ensure_admin("admin", "s3cret-from-env")
    assert "SimpleAuthManager" in out
    assert json.loads(pw.read_text()) == {"viewer": "kept-as-is", "admin": "s3cret-from-env"}
    assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["passwords.json"]  # no temp file left


def test_connections_from_env_are_upserted(init, airflow_db, settings) -> None:
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    env = {
        "AIRFLOW_ADMIN_USERNAME": "ops",
        "AIRFLOW_ADMIN_PASSWORD": "a-long-enough-one",
        "AIRFLOW_INIT_CONN_SMTP_TEST": "smtp://alerts:pa%24%24@smtp.example.org:587",
        "AIRFLOW_INIT_CONN_EMPTY": "",
    }
    assert init.connections_from_env(env) == {"smtp_test": env["AIRFLOW_INIT_CONN_SMTP_TEST"]}
    assert init.upsert_connections(init.connections_from_env(env)) == ["smtp_test"]
    # a second run with a changed value updates the same connection (JSON form this time)
    changed = json.dumps(
        {
            "conn_type": "smtp",
            "host": "mail.example.org",
            "port": 25,
            "login": "a",
            "password": "new",
        }
    )
    init.upsert_connections({"smtp_test": changed})
    with create_session() as s:
        rows = s.scalars(select(Connection).where(Connection.conn_id == "smtp_test")).all()
        assert len(rows) == 1
        assert (rows[0].host, rows[0].port, rows[0].login, rows[0].password) == (
            "mail.example.org",
            25,
            "a",
            "new",
        )
    assert init.ensure_satseg_home().endswith(str(settings.home))
    assert settings.inbox.is_dir()


@pytest.mark.services
def test_postgres_init_creates_owned_databases() -> None:
    require_services()
    import psycopg2

    with fresh_databases("init") as dbs:
        for user, db in ((dbs.airflow_user, dbs.airflow_db), (dbs.mlflow_user, dbs.mlflow_db)):
            conn = psycopg2.connect(host="127.0.0.1", user=user, password=dbs.password, dbname=db)
            with conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE probe (x int)")  # the owner can build its schema
                cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                assert cur.fetchone() == (False,)
            conn.close()
    assert not database_exists(dbs.airflow_db) and not database_exists(dbs.mlflow_db)


def _scram_matches(stored: str, password: str) -> bool:
    """Whether a PostgreSQL SCRAM-SHA-256 verifier was made from ``password``."""
    import base64
    import hashlib
    import hmac

    method, rest = stored.split("$", 1)
    assert method == "SCRAM-SHA-256", stored[:20]
    iter_salt, keys = rest.split("$")
    iterations, salt = iter_salt.split(":")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


@pytest.mark.services
def test_postgres_init_runs_again_on_an_existing_volume() -> None:
    """The postgres-init job runs on every `up`: a second run creates nothing twice, fails on
    nothing, and sets each role's password to the (changed) environment value."""
    require_services()
    import os
    import subprocess

    import psycopg2

    from tests.ops.services import INIT_SQL, PG_HOST, PG_PORT, _admin

    def verifier(role: str) -> str:
        conn = _admin()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,))
                return str(cur.fetchone()[0])
        finally:
            conn.close()

    with fresh_databases("again") as dbs:
        assert _scram_matches(verifier(dbs.airflow_user), dbs.password)
        conn = psycopg2.connect(dbs.url("airflow", driver="postgresql"))
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (x int)")
            cur.execute("INSERT INTO kept VALUES (1)")
        conn.close()
        env = {
            **os.environ,
            "PGHOST": PG_HOST,
            "PGPORT": str(PG_PORT),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "postgres",
            "AIRFLOW_DB_USER": dbs.airflow_user,
            "AIRFLOW_DB_PASSWORD": "rotated-" + dbs.password,
            "AIRFLOW_DB": dbs.airflow_db,
            "MLFLOW_DB_USER": dbs.mlflow_user,
            "MLFLOW_DB_PASSWORD": dbs.password,
            "MLFLOW_DB": dbs.mlflow_db,
        }
        r = subprocess.run(["bash", str(INIT_SQL)], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "ready" in r.stdout
        assert _scram_matches(verifier(dbs.airflow_user), "rotated-" + dbs.password)
        assert _scram_matches(verifier(dbs.mlflow_user), dbs.password)
        conn = psycopg2.connect(dbs.url("airflow", driver="postgresql"))
        with conn, conn.cursor() as cur:
            cur.execute("SELECT x FROM kept")  # the existing database was left as it was
            assert cur.fetchall() == [(1,)]
        conn.close()
        bad = {**env, "AIRFLOW_DB_PASSWORD": ""}
        r = subprocess.run(["bash", str(INIT_SQL)], env=bad, capture_output=True, text=True)
        assert r.returncode != 0 and "AIRFLOW_DB_PASSWORD" in r.stderr  # a clear refusal
