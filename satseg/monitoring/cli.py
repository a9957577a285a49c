"""``satseg drift``: the monitor's data-drift check from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def drift(
    reference: str = typer.Option(
        ..., "--reference", "-r", help="Dataset tag (e.g. demo-v3), dataset dir or features.csv"
    ),
    current: list[Path] = typer.Option(
        ..., "--current", "-c", help="Scenes (GeoTIFF/PNG/JPEG) or folders; more may follow"
    ),
    more: list[Path] = typer.Argument(None, hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object"),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Log the report to MLflow"),
) -> None:
    """Compare current imagery with a dataset version (exit 0 whether or not drift is found)."""
    from satseg.config import get_settings
    from satseg.monitoring import MonitorError
    from satseg.monitoring.checks import run_drift

    try:
        doc = run_drift(get_settings(), reference, [*current, *(more or [])], log_mlflow=mlflow)
    except MonitorError as e:
        if as_json:
            typer.echo(json.dumps({"error": str(e)}))
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    if as_json:
        keys = ("drift_detected", "share_drifted", "n_drifted", "features", "report", "summary")
        out = {k: doc[k] for k in keys}
        out.update(reference=doc["reference"], mlflow_run_id=doc["mlflow_run_id"])
        typer.echo(json.dumps(out, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"drift vs {reference}: {doc['n_current']} current windows")
    for col in ("feature", "KS statistic", "p-value", "drifted"):
        t.add_column(col)
    for name, f in doc["features"].items():
        t.add_row(
            name, f"{f['statistic']:.3f}", f"{f['p_value']:.2g}", "yes" if f["drifted"] else ""
        )
    console = Console()
    console.print(t)
    verdict = "DRIFT" if doc["drift_detected"] else "no drift"
    console.print(
        f"{verdict}: {doc['share_drifted']:.0%} of features drifted; report {doc['report']}"
    )


def register(app: typer.Typer) -> None:
    """Add ``satseg drift`` to the main app."""
    app.command("drift")(drift)
