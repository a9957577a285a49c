"""Second half of the airflow-init job: admin user and connections from the environment.

Runs after ``airflow db migrate`` in one Python process, so that the admin password never
appears on a command line (``ps``) and no extra Airflow CLI start-up is paid per item.

Environment:
  AIRFLOW_ADMIN_USERNAME / AIRFLOW_ADMIN_PASSWORD   the admin account (created, or its
      password reset to this value: .env stays the source of truth)
  AIRFLOW_INIT_CONN_<ID>=<uri or JSON>              upserted as connection ``<id>`` (lower
      case), stored encrypted with the Fernet key, e.g. AIRFLOW_INIT_CONN_SMTP_DEFAULT
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

CONN_PREFIX = "AIRFLOW_INIT_CONN_"
WEAK = {"admin", "airflow", "password", "changeme", "secret", "123456", "postgres"}
MIN_PASSWORD = 12


class InitError(SystemExit):
    """A configuration problem the operator must fix; the job fails with this message."""


def admin_from_env(env: Mapping[str, str]) -> tuple[str, str]:
    user = env.get("AIRFLOW_ADMIN_USERNAME", "").strip()
    password = env.get("AIRFLOW_ADMIN_PASSWORD", "")
    if not user:
        raise InitError("AIRFLOW_ADMIN_USERNAME is not set")
    if len(password) < MIN_PASSWORD or password.lower() in WEAK or password == user:
        raise InitError(
            f"AIRFLOW_ADMIN_PASSWORD must be at least {MIN_PASSWORD} characters and not a "
            "default (generate one: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    return user, password


def connections_from_env(env: Mapping[str, str]) -> dict[str, str]:
    return {
        k[len(CONN_PREFIX) :].lower(): v
        for k, v in sorted(env.items())
        if k.startswith(CONN_PREFIX) and len(k) > len(CONN_PREFIX) and v.strip()
    }


def upsert_connections(conns: Mapping[str, str]) -> list[str]:
    """Create or update each connection (URI or Airflow's JSON form) in the metadata DB."""
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    done = []
    with create_session() as session:
        for conn_id, value in conns.items():
            new = (
                Connection.from_json(value, conn_id=conn_id)
                if value.lstrip().startswith("{")
                else Connection(conn_id=conn_id, uri=value)
            )
            old = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
            if old is None:
                session.add(new)
            else:
                for field in ("conn_type", "host", "schema", "login", "port", "description"):
                    setattr(old, field, getattr(new, field))
                old.set_password(new.password)
                old.set_extra(new.extra)
            done.append(conn_id)
    return done


def auth_manager_name() -> str:
    from airflow.configuration import conf

    return conf.get("core", "auth_manager")


def ensure_admin(user: str, password: str) -> str:
    """Create the admin (or reset its password) in whichever auth manager is configured."""
    manager = auth_manager_name()
    if manager.endswith("SimpleAuthManager"):
        return _simple_admin(user, password)
    if manager.endswith("FabAuthManager"):
        return _fab_admin(user, password)
    return f"auth manager {manager}: manage its users there (nothing done)"


def _simple_admin(user: str, password: str) -> str:
    """SimpleAuthManager reads passwords from a JSON file; write it atomically, mode 0600."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    path = Path(SimpleAuthManager.get_generated_password_file())
    passwords = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
    passwords[user] = password
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(passwords) + "\n")
    os.replace(tmp, path)
    return f"SimpleAuthManager: password of {user!r} set in {path}"


def _fab_admin(user: str, password: str) -> str:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        existing = sm.find_user(username=user)
        if existing is None:
            created = sm.add_user(
                user, "satseg", "admin", f"{user}@satseg.local", sm.find_role("Admin"), password
            )
            if not created:
                raise InitError(f"could not create admin user {user!r}")
            return f"FAB: admin user {user!r} created"
        sm.reset_password(existing.id, password)
        return f"FAB: admin user {user!r} exists, password refreshed from the environment"


def ensure_satseg_home() -> str:
    from satseg.config import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    return f"SATSEG_HOME folders ready under {settings.home}"


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    user, password = admin_from_env(env)
    print(f"airflow-init: {ensure_admin(user, password)}")
    conns = upsert_connections(connections_from_env(env))
    print(f"airflow-init: connections {', '.join(conns) if conns else '(none configured)'}")
    print(f"airflow-init: {ensure_satseg_home()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
