"""``satseg ops prune``: the housekeeping the ``satseg_housekeeping`` DAG runs daily."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``ops`` group to ``app``."""
    ops = typer.Typer(help="Operations of a deployment (housekeeping).", no_args_is_help=True)
    app.add_typer(ops, name="ops")

    @ops.command("prune")
    def prune(
        dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would go"),
        logs: Path | None = typer.Option(
            None, "--logs", help="Airflow log folder (default: Airflow's base_log_folder)"
        ),
        db: bool = typer.Option(True, "--db/--no-db", help="Also run `airflow db clean`"),
    ) -> None:
        """Delete task logs older than SATSEG_LOG_RETENTION_DAYS and metadata rows older than
        SATSEG_DB_RETENTION_DAYS (`airflow db clean`)."""
        from satseg.config import get_settings
        from satseg.ops.housekeeping import housekeep

        out = housekeep(get_settings(), dry_run=dry_run, logs=logs, db=db)
        out.get("db", {}).pop("output", None)
        typer.echo(json.dumps(out, indent=2))
