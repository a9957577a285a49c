"""What the satseg pages show, read from SATSEG_HOME through satseg's own modules.

Every page names things by what satseg wrote: a scene is a folder of ``predictions/`` with a
``summary.json``, a report day a folder of ``reports/``, a quarantined file its ref below
``quarantine/``. A name from a request is only ever looked up among those (``scene_dir``,
``report_file``, ``satseg.inbox.quarantine.find_quarantined``), never joined onto a path as it
came, so no request reaches a file satseg did not write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from satseg import vocab
from satseg.api import catalog
from satseg.config import Settings
from satseg.inference.cog import aux_path
from satseg.inference.params import CLASS_OUTPUT_NAMES, OUTPUT_NAMES, SUMMARY

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")  # a class colour (pages put it in a style)
ANNOTATE = "annotate"  # SATSEG_HOME/annotate/<dataset>/: labelling tasks (issue 19, item 3)
# a scene's outputs by key: binary (mask.tif) or multi-class (classes.tif + its PAM sidecar
# with the category names and attribute table, which a GIS reads next to it)
FILES = {
    **OUTPUT_NAMES,
    **CLASS_OUTPUT_NAMES,
    "classes_aux": aux_path(Path(CLASS_OUTPUT_NAMES["classes"])).name,
}
DOWNLOADS = {"probability", "mask", "classes", "classes_aux", "vectors", "stac", "quicklook"}


class Missing(Exception):
    """The page names a scene, file or report that is not there (HTTP 404)."""


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- predictions -------------------------------------------------------------------------
def predictions(settings: Settings) -> list[dict[str, Any]]:
    """Every predicted scene (a folder with ``summary.json``), newest first."""
    root = settings.predictions
    if not root.is_dir():
        return []
    rows = []
    for d in root.iterdir():
        if d.is_dir() and not d.name.startswith(".") and vocab.is_safe_name(d.name):
            summary = _read_json(d / SUMMARY)
            if summary is not None:
                rows.append(_row(d, summary))
    return sorted(rows, key=lambda r: (r["time"] or "", r["scene"]), reverse=True)


def _row(folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
    item = _read_json(folder / OUTPUT_NAMES["stac"]) or {}
    props = item.get("properties", {})
    model = summary.get("model") or {}
    fraction = summary.get("positive_fraction")
    classes = class_table(summary)
    return {
        "scene": folder.name,
        "time": props.get("datetime"),
        "model": model,
        "georeferenced": bool(summary.get("georeferenced")),
        "width": summary.get("width"),
        "height": summary.get("height"),
        "crs": summary.get("crs"),
        "polygons": summary.get("polygons"),
        "classes": classes,  # None for a binary scene
        "areas": _class_shares(classes) if classes else _areas(summary, fraction),
        "warnings": list(summary.get("warnings") or []),
        "summary": summary,
        "bbox": item.get("bbox"),
    }


def _areas(summary: dict[str, Any], fraction: float | None) -> list[dict[str, Any]]:
    """Area per class: share of the valid pixels, pixels, and m² of the building polygons."""
    if fraction is None:
        return []
    px = (summary.get("width") or 0) * (summary.get("height") or 0)
    return [
        {
            "class": "building",
            "share": fraction,
            "pixels": round(fraction * px),
            "m2": summary.get("building_area_m2"),
        },
        {
            "class": "background",
            "share": 1 - fraction,
            "pixels": round((1 - fraction) * px),
            "m2": None,
        },
    ]


def class_table(summary: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A multi-class scene's classes in index order (``summary.json``'s ``class_areas``:
    index, name, colour, pixels, share, polygons, area_m2); None for a binary scene."""
    rows = summary.get("class_areas")
    if not isinstance(rows, list) or not rows:
        return None
    return [
        {**r, "color": r["color"] if HEX_COLOUR.match(str(r.get("color"))) else "#808080"}
        for r in rows
        if isinstance(r, dict)
    ]


def class_palette(settings: Settings, scene: str) -> list[tuple[int, int, int]] | None:
    """A multi-class scene's class colours as RGB, index order (None: binary)."""
    from satseg.classes import ModelClasses

    d = scene_dir(settings, scene)
    classes = class_table(_read_json(d / SUMMARY) or {})
    if not classes:
        return None
    names = tuple(str(c.get("name")) for c in classes)
    colors = tuple(str(c.get("color")) for c in classes)
    return ModelClasses(names=names, colors=colors, multiclass=True).rgb()


def _class_shares(classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``_areas``'s rows for a multi-class scene: one per class, with its colour."""
    return [
        {
            "class": c.get("name"),
            "color": c.get("color"),
            "share": c.get("share"),
            "pixels": c.get("pixels"),
            "m2": c.get("area_m2"),
        }
        for c in classes
    ]


def scene_dir(settings: Settings, scene: str) -> Path:
    """The folder of a predicted scene named in a request (404 unless it is one)."""
    if not vocab.is_safe_name(scene):
        raise Missing(f"no predicted scene {scene!r}")
    d = settings.predictions / scene
    if d.is_symlink() or not (d / SUMMARY).is_file():
        raise Missing(f"no predicted scene {scene!r}")
    return d


def scene(settings: Settings, name: str) -> dict[str, Any]:
    """One scene's row plus what its map needs."""
    d = scene_dir(settings, name)
    summary = _read_json(d / SUMMARY)
    if summary is None:
        raise Missing(f"{name}: summary.json is unreadable")
    row = _row(d, summary)
    source = Path(str(summary.get("source", "")))
    row["source_path"] = source
    row["source_kind"] = _source_kind(source)
    row["downloads"] = {k: FILES[k] for k in DOWNLOADS if (d / FILES[k]).is_file()}
    return row


def _source_kind(source: Path) -> str | None:
    """``tiles`` (a GeoTIFF), ``image`` (PNG/JPEG: shown whole) or None (gone)."""
    from satseg.io.raster import RasterError
    from satseg.io.sniff import sniff

    if not source.is_file():
        return None
    try:
        fmt = sniff(source)
    except RasterError:
        return None
    return "tiles" if fmt == "GTiff" else "image"


def output_file(settings: Settings, name: str, key: str) -> Path:
    """A scene's output named by its key (``mask``, ``classes``, ``vectors``...), for
    download or tiles."""
    if key not in FILES:
        raise Missing(f"no output {key!r}")
    path = scene_dir(settings, name) / FILES[key]
    if not path.is_file():
        raise Missing(f"{name} has no {FILES[key]}")
    return path


# --- models --------------------------------------------------------------------------------
def models(settings: Settings) -> dict[str, Any]:
    """Registered versions with metrics, aliases, lineage; the champion history."""
    from satseg.registry import store

    refs = catalog.models(settings)
    return {
        "versions": [
            {**catalog.model_entry(r), "lineage": store.lineage(settings, r.run_id)} for r in refs
        ],
        "history": store.history(settings) if refs else [],
        "registered_model": settings.registered_model,
    }


# --- data ----------------------------------------------------------------------------------
def data(settings: Settings) -> dict[str, Any]:
    """Datasets with their versions, the quarantine and the actions taken on it."""
    from satseg.inbox import quarantine as q

    versions = catalog.data_versions(settings)
    datasets = catalog.datasets(settings)
    for ds in datasets:
        ds["versions"] = [v.to_dict() for v in versions if v.dataset == ds["name"]][::-1]
    return {
        "datasets": datasets,
        "quarantine": q.list_quarantined(settings),
        "actions": q.actions(settings, limit=50),
    }


# --- monitoring ----------------------------------------------------------------------------
def reports(settings: Settings) -> list[dict[str, Any]]:
    """Report days, newest first: their drift reports (HTML + JSON summary) and plots."""
    root = settings.reports
    if not root.is_dir():
        return []
    days = []
    for d in sorted((p for p in root.iterdir() if DAY.match(p.name) and p.is_dir()), reverse=True):
        files = sorted(f.name for f in d.iterdir() if f.is_file() and vocab.is_safe_name(f.name))
        drift = []
        for name in (f for f in files if f.startswith("drift-") and f.endswith(".html")):
            summary = _read_json(d / (name.removesuffix(".html") + ".json"))
            drift.append({"html": name, "summary": summary})
        plots = [f for f in files if f.endswith(".png")]
        days.append({"day": d.name, "drift": drift, "plots": plots, "files": files})
    return days


def report_file(settings: Settings, day: str, name: str) -> Path:
    """A file of a report day named in a request (404 unless satseg wrote it there)."""
    if not DAY.match(day) or not vocab.is_safe_name(name):
        raise Missing(f"no report file {day}/{name}")
    path = settings.reports / day / name
    if path.is_symlink() or not path.is_file():
        raise Missing(f"no report file {day}/{name}")
    return path


# --- annotation tasks ----------------------------------------------------------------------
def annotation_tasks(settings: Settings) -> dict[str, Any]:
    """The labelling tasks ``satseg.annotate`` exported, per dataset, best rank first."""
    from satseg.annotate.tasks import list_tasks

    root = settings.home / ANNOTATE
    by_ds: dict[str, list[dict[str, Any]]] = {}
    for t in list_tasks(settings):
        by_ds.setdefault(t["dataset"], []).append(t)
    return {
        "root": str(root),
        "datasets": [{"name": ds, "tasks": tasks} for ds, tasks in sorted(by_ds.items())],
    }
