"""Datasets, data versions and registered models, read through satseg's own modules.

The registry is imported through ``satseg.registry``, whose functions load MLflow on first
use, so building the app does not pay for MLflow until a model route is called.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from satseg import registry, versioning, vocab
from satseg.config import Settings
from satseg.manifest import ManifestError, manifest_path, read_manifest


class NotFound(Exception):
    """The dataset, tag or model version does not exist (HTTP 404)."""


class BadRequest(Exception):
    """The request names something malformed, e.g. a tag that is not ``<dataset>-v<N>`` (400)."""


HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")  # what ingest.classes allows (satseg.params)
NOT_DATASETS = frozenset({"predict-done"})  # raw/predict-done holds inputs already segmented


def datasets(settings: Settings) -> list[dict[str, Any]]:
    """Processed datasets with their manifest counts and latest version, plus raw-only ones."""
    names = {p.name for p in _subdirs(settings.processed)} | {
        p.name for p in _subdirs(settings.raw)
    }
    latest = _latest_tags(settings)
    out = []
    for name in sorted(names - NOT_DATASETS):
        processed = settings.processed / name
        counts, manifest = _manifest(processed)
        raw = settings.raw / name
        out.append(
            {
                "name": name,
                "processed": processed.is_dir(),
                "raw_files": sum(1 for p in raw.rglob("*") if p.is_file()) if raw.is_dir() else 0,
                "counts": counts,
                "manifest": manifest,
                "latest_version": latest.get(name),
            }
        )
    return out


def _latest_tags(settings: Settings) -> dict[str, str]:
    return {v.dataset: v.tag for v in versioning.list_versions(settings)}  # oldest first: last wins


def _subdirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _manifest(dataset_dir: Path) -> tuple[dict[str, int] | None, str | None]:
    """(counts, manifest path) for the listing: a broken manifest shows no counts."""
    path = manifest_path(dataset_dir)
    if not path.is_file():
        return None, None
    try:
        return read_manifest(dataset_dir, require=()).counts, str(path)
    except ManifestError:
        return None, str(path)


def data_versions(settings: Settings, dataset: str | None = None) -> list[Any]:
    """Every version (DVC tag) of one or all datasets, oldest first."""
    return list(versioning.list_versions(settings, dataset))


def checkout(settings: Settings, tag: str) -> dict[str, Any]:
    """Restore ``processed/<dataset>`` to version ``tag`` (md5-checked by versioning)."""
    try:
        dataset, _ = vocab.parse_tag(tag)
    except vocab.TagError as e:
        raise BadRequest(str(e)) from e
    if tag not in {v.tag for v in versioning.list_versions(settings, dataset)}:
        raise NotFound(f"no data version {tag!r} of dataset {dataset!r}")
    path = versioning.checkout(settings, tag)
    files = sum(1 for p in path.rglob("*") if p.is_file())
    return {"tag": tag, "dataset": dataset, "path": str(path), "files": files}


def models(settings: Settings) -> list[Any]:
    """Every registered version, newest first, with its aliases and final metrics."""
    return list(registry.list_models(settings))


def model_entry(ref: Any) -> dict[str, Any]:
    """A version as ``/models`` shows it: the ModelRef's fields (``metrics`` holds the final
    ones: ``val_iou`` for binary, ``val_miou`` and ``val_iou_<class>`` for multi-class) with
    ``classes`` as the rows of its class table (index, name, colour; a binary model, or one
    registered before class tables, has the one ``building`` class), ``multiclass`` and
    ``ignore_index``."""
    from satseg.classes import ModelClasses, binary_json

    table = ref.classes or binary_json()
    try:
        mc = ModelClasses.from_json(table)
    except (ValueError, KeyError, TypeError):  # a malformed tag: show what was recorded
        return {**ref.to_dict(), "multiclass": None, "ignore_index": None}
    first = 0 if mc.multiclass else int(binary_json()["classes"][0]["index"])
    rows = [
        {"index": first + i, "name": n, "color": c if HEX_COLOUR.fullmatch(c) else None}
        for i, (n, c) in enumerate(zip(mc.names, mc.colors, strict=True))
    ]
    return {
        **ref.to_dict(),
        "classes": rows,
        "multiclass": mc.multiclass,
        "ignore_index": table.get("ignore_index") if mc.multiclass else None,
    }


def promote(settings: Settings, version: str) -> Any:
    """Move the ``champion`` alias to ``version`` (a person decided; no metric check)."""
    from satseg.registry.store import RegistryError  # loads MLflow: only when promoting

    try:
        return registry.promote(settings, version)
    except RegistryError as e:
        raise NotFound(str(e)) from e
