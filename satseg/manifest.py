"""The one reader of a processed dataset's ``manifest.json``.

Preprocessing writes the manifest; training, monitoring, the API and the rebuild check read it
through ``read_manifest``, so a missing, unreadable or malformed manifest fails the same way
everywhere: ``ManifestError`` naming the file and the problem. Callers that tolerate a broken
manifest (a listing, a cache check) catch that one error; none parses JSON itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
REQUIRED_KEYS = ("dataset", "tag", "counts")


class ManifestError(ValueError):
    """A dataset's manifest is missing, unreadable, not a JSON object or lacks keys."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class Manifest:
    """A manifest's headline fields, and the whole document for everything else."""

    path: Path
    dataset: str | None
    tag: str | None
    counts: dict[str, int] | None
    doc: dict[str, Any]


def manifest_path(dataset_dir: Path | str) -> Path:
    """Where the manifest of ``dataset_dir`` lives."""
    return Path(dataset_dir) / MANIFEST


def read_manifest(dataset_dir: Path | str, require: Iterable[str] = REQUIRED_KEYS) -> Manifest:
    """Parse ``<dataset_dir>/manifest.json``; ``require`` names the keys it must have.

    Raises:
        ManifestError: the file is missing or unreadable, is not a JSON object, or lacks one
            of ``require`` (all missing keys are named).
    """
    path = manifest_path(dataset_dir)
    if not path.is_file():
        raise ManifestError(Path(dataset_dir), f"no {MANIFEST} (not a processed dataset)")
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise ManifestError(path, f"cannot be read ({e})") from e
    except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8
        raise ManifestError(path, f"not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise ManifestError(path, f"not a JSON object but {type(doc).__name__}")
    missing = [k for k in require if k not in doc]
    if missing:
        raise ManifestError(path, f"missing key(s) {', '.join(missing)}")
    return Manifest(path, doc.get("dataset"), doc.get("tag"), doc.get("counts"), doc)
