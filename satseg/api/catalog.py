"""Datasets, data versions and registered models, read through satseg's own modules.

Versioning (``satseg.versioning``) and the registry (``satseg.registry``) are imported
when a request needs them, so the API still starts and reports clearly (503) on an
install that lacks one of them.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from satseg import vocab
from satseg.config import Settings


class Unavailable(Exception):
    """A part of satseg this endpoint needs is not installed or not reachable (HTTP 503)."""


class NotFound(Exception):
    """The dataset, tag or model version does not exist (HTTP 404)."""


class BadRequest(Exception):
    """The request names something malformed, e.g. a tag that is not ``<dataset>-v<N>`` (400)."""


def _module(name: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise Unavailable(f"{purpose} is unavailable: {name} cannot be imported ({e})") from e


def versioning() -> ModuleType:
    return _module("satseg.versioning", "data versioning")


def registry() -> ModuleType:
    return _module("satseg.registry", "the model registry")


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
        manifest = _manifest(processed / "manifest.json")
        raw = settings.raw / name
        out.append(
            {
                "name": name,
                "processed": processed.is_dir(),
                "raw_files": sum(1 for p in raw.rglob("*") if p.is_file()) if raw.is_dir() else 0,
                "counts": manifest.get("counts"),
                "manifest": manifest.get("_path"),
                "latest_version": latest.get(name),
            }
        )
    return out


def _latest_tags(settings: Settings) -> dict[str, str]:
    try:
        ver = versioning()
    except Unavailable:
        return {}
    return {v.dataset: v.tag for v in ver.list_versions(settings)}  # oldest first: last wins


def _subdirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {"_path": str(path), "counts": None}
    return {"counts": data.get("counts"), "_path": str(path)}


def data_versions(settings: Settings, dataset: str | None = None) -> list[Any]:
    """Every version (DVC tag) of one or all datasets, oldest first."""
    return list(versioning().list_versions(settings, dataset))


def checkout(settings: Settings, tag: str) -> dict[str, Any]:
    """Restore ``processed/<dataset>`` to version ``tag`` (md5-checked by versioning)."""
    ver = versioning()
    try:
        dataset, _ = vocab.parse_tag(tag)
    except vocab.TagError as e:
        raise BadRequest(str(e)) from e
    if tag not in {v.tag for v in ver.list_versions(settings, dataset)}:
        raise NotFound(f"no data version {tag!r} of dataset {dataset!r}")
    path = ver.checkout(settings, tag)
    files = sum(1 for p in path.rglob("*") if p.is_file())
    return {"tag": tag, "dataset": dataset, "path": str(path), "files": files}


def models(settings: Settings) -> list[Any]:
    """Every registered version, newest first, with its aliases and final metrics."""
    return list(registry().list_models(settings))


def promote(settings: Settings, version: str) -> Any:
    """Move the ``champion`` alias to ``version`` (a person decided; no metric check)."""
    reg = registry()
    from satseg.registry.store import RegistryError

    try:
        return reg.promote(settings, version)
    except RegistryError as e:
        raise NotFound(str(e)) from e
