"""``satseg annotate export|list``: the annotation queue from the command line."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    """Add the ``annotate`` group to ``app``."""
    group = typer.Typer(
        help="Labelling tasks from the champion's least certain windows.", no_args_is_help=True
    )
    app.add_typer(group, name="annotate")

    @group.command("export")
    def export_cmd(
        scenes: list[str] = typer.Argument(None, help="Predicted scenes (default: all)"),
        dataset: str | None = typer.Option(None, "--dataset", "-d", help="Default: the model's"),
        budget: int | None = typer.Option(
            None, "--budget", min=0, help="Tasks to export (default: annotate.budget)"
        ),
    ) -> None:
        """Export the most uncertain windows of predictions as LabelMe tasks (like the DAG)."""
        from satseg.annotate.export import export_tasks
        from satseg.config import get_settings

        out = export_tasks(get_settings(), scenes or None, dataset=dataset, budget=budget)
        typer.echo(json.dumps(out, indent=2))

    @group.command("list")
    def list_cmd(
        dataset: str | None = typer.Argument(None, help="Dataset (default: all)"),
        as_json: bool = typer.Option(False, "--json", help="One JSON list"),
        only_open: bool = typer.Option(False, "--open", help="Only tasks not yet ingested"),
    ) -> None:
        """The queue, best rank first: score, source scene, status, files."""
        from satseg.annotate.tasks import list_tasks
        from satseg.config import get_settings

        found = [
            t for t in list_tasks(get_settings(), dataset) if not only_open or t["status"] == "open"
        ]
        if as_json:
            typer.echo(json.dumps(found, indent=2))
            return
        if not found:
            typer.echo("no annotation tasks")
        for t in found:
            typer.echo(
                f"{t['dataset']:<12} #{t['rank']:<4} {t['score']:.3f} {t['status']:<9} "
                f"{t['task']:<40} {t['image_path']}"
            )
