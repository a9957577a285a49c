"""``satseg ingest`` (one pass, like the DAG) and ``satseg data versions|checkout``."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    """Add ``ingest`` and the ``data`` group to ``app``."""

    @app.command()
    def ingest(
        dataset: str | None = typer.Option(None, "--dataset", "-d", help="Only this dataset"),
        poll: float | None = typer.Option(
            None,
            "--poll",
            min=0.0,
            help="Seconds between the two size checks (default SATSEG_STABLE_POLLS_S)",
        ),
    ) -> None:
        """Process the inbox once: validate, patch, version (what satseg_ingest does)."""
        from satseg.config import get_settings
        from satseg.ingest.pipeline import run_once

        out = run_once(get_settings(), dataset=dataset, poll_interval=poll)
        for r in out["results"]:
            shown = {
                k: r.get(k) for k in ("dataset", "scene", "status", "check", "reason") if r.get(k)
            }
            typer.echo(json.dumps(shown))
        for v in out["versions"]:
            state = "new" if v["new"] else "unchanged"
            typer.echo(
                f"{v['tag']} ({state}): train {v['counts'].get('train', 0)}, val {v['counts'].get('val', 0)}"
            )
        for stuck in out.get("stuck", []):
            typer.echo(f"stuck in the inbox (cannot be moved out, see the log): {stuck}")
        if not out["pairs"]:
            typer.echo("inbox: nothing ready")

    data = typer.Typer(help="Versioned training datasets (git + DVC).", no_args_is_help=True)
    app.add_typer(data, name="data")

    @data.command("versions")
    def versions(
        dataset: str | None = typer.Argument(None, help="Dataset name (default: all)"),
        as_json: bool = typer.Option(False, "--json", help="One JSON list"),
    ) -> None:
        """List dataset versions: tag, date, counts."""
        from satseg.config import get_settings
        from satseg.versioning import list_versions

        found = list_versions(get_settings(), dataset)
        if as_json:
            typer.echo(json.dumps([v.to_dict() for v in found], indent=2))
            return
        if not found:
            typer.echo("no dataset versions yet")
            return
        for v in found:
            counts = ", ".join(f"{k} {n}" for k, n in sorted(v.counts.items()))
            typer.echo(f"{v.tag:<24} {v.date:<26} {counts:<24} {v.md5}")

    @data.command("checkout")
    def checkout_cmd(tag: str = typer.Argument(..., help="Version tag, e.g. demo-v2")) -> None:
        """Restore processed/<dataset>/ to a version exactly (every file's md5 checked)."""
        from satseg.config import get_settings
        from satseg.versioning import VersioningError, checkout

        try:
            path = checkout(get_settings(), tag)
        except VersioningError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from e
        typer.echo(f"{tag} checked out into {path}")
