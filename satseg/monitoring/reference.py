"""Reference features: those of the dataset version the champion was trained on.

Ingest writes ``features.csv`` (``split`` + feature columns, one row per patch) into each
processed dataset, so it is versioned with the data; an older tag is checked out through
``satseg.versioning``. A path to a dataset directory or a features.csv is accepted as well
(ad-hoc comparisons, tests).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from satseg.manifest import ManifestError, read_manifest
from satseg.monitoring import MonitorError
from satseg.monitoring.features import feature_names
from satseg.vocab import TagError, parse_tag

if TYPE_CHECKING:
    import pandas as pd

    from satseg.config import Settings
    from satseg.versioning import DatasetVersion

log = logging.getLogger(__name__)
FEATURES_CSV = "features.csv"


def split_tag(tag: str) -> tuple[str, int]:
    """``demo-v3`` -> ("demo", 3); anything else is not a dataset tag."""
    try:
        return parse_tag(tag)
    except TagError as e:
        raise MonitorError(
            f"{tag!r} is neither an existing path nor a dataset tag (<dataset>-v<N>)"
        ) from e


def _versions(settings: Settings) -> list[DatasetVersion]:
    """Dataset versions of the data repository, oldest first per dataset (none without one)."""
    import satseg.versioning as versioning

    return list(versioning.list_versions(settings))


def known_tags(settings: Settings) -> list[str]:
    return [v.tag for v in _versions(settings)]


def latest_tags(settings: Settings) -> dict[str, str]:
    """Newest tag of each dataset."""
    return {v.dataset: v.tag for v in _versions(settings)}  # sorted by (dataset, number)


def tag_dir(settings: Settings, tag: str) -> Path:
    """A directory holding version ``tag``: the live dataset if it is that version, else a
    read-only copy (``versioning.materialize``), so training's working copy is never swapped."""
    import satseg.versioning as versioning

    dataset, _ = split_tag(tag)
    tags = known_tags(settings)
    if tag not in tags:
        raise MonitorError(f"unknown dataset tag {tag!r}; known tags: {', '.join(tags) or 'none'}")
    d = Path(versioning.dataset_dir(settings, dataset))
    if _manifest_tag(d) == tag:
        return d
    return Path(versioning.materialize(settings, tag))


def _manifest_tag(d: Path) -> str | None:
    try:
        return read_manifest(d).tag
    except ManifestError:
        return None


def features_path(settings: Settings, ref: str) -> Path:
    """features.csv of a tag, dataset directory or explicit CSV path."""
    p = Path(ref).expanduser()
    if p.is_dir():
        csv = p / FEATURES_CSV
    elif p.is_file():
        csv = p
    else:
        csv = tag_dir(settings, ref) / FEATURES_CSV
    if not csv.is_file():
        raise MonitorError(
            f"reference {ref!r}: no {FEATURES_CSV} at {csv} "
            "(was the dataset processed before features were recorded? re-run ingest)"
        )
    return csv


def load_reference(settings: Settings, ref: str) -> tuple[pd.DataFrame, Path]:
    """Reference feature rows (all splits) and where they came from."""
    import pandas as pd

    csv = features_path(settings, ref)
    try:
        df = pd.read_csv(csv)
    except Exception as e:
        raise MonitorError(f"reference {ref!r}: cannot read {csv}: {e}") from e
    missing = [n for n in feature_names() if n not in df.columns]
    if missing:
        raise MonitorError(f"reference {ref!r}: {csv} lacks columns {', '.join(missing)}")
    if df.empty:
        raise MonitorError(f"reference {ref!r}: {csv} has no rows")
    return df, csv


def default_reference(settings: Settings) -> str | None:
    """The champion's training dataset tag, else the newest dataset tag, else None."""
    from satseg import registry

    try:
        champ = registry.champion(settings)
    except Exception as e:  # tracking store unreachable: data drift still gets checked
        log.warning("no champion to take the reference from: %s", e)
        champ = None
    if champ is not None and champ.dataset_tag:
        return champ.dataset_tag
    versions = _versions(settings)
    return max(versions, key=lambda v: v.date).tag if versions else None
