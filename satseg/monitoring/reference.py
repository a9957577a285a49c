"""Reference features: those of the dataset version the champion was trained on.

Ingest writes ``features.csv`` (``split`` + feature columns, one row per patch) into each
processed dataset, so it is versioned with the data; an older tag is checked out through
``satseg.versioning``. A path to a dataset directory or a features.csv is accepted as well
(ad-hoc comparisons, tests).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satseg.monitoring import MonitorError
from satseg.monitoring.features import feature_names

if TYPE_CHECKING:
    import pandas as pd

    from satseg.config import Settings

log = logging.getLogger(__name__)
FEATURES_CSV = "features.csv"
_TAG = re.compile(r"^(?P<dataset>.+)-v(?P<n>\d+)$")


def split_tag(tag: str) -> tuple[str, int]:
    """``demo-v3`` -> ("demo", 3); anything else is not a dataset tag."""
    m = _TAG.match(tag)
    if not m:
        raise MonitorError(
            f"{tag!r} is neither an existing path nor a dataset tag (<dataset>-v<N>)"
        )
    return m["dataset"], int(m["n"])


def _tag_name(v: Any) -> str:
    """A version as listed by satseg.versioning: a tag string or an object/dict with a tag."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        return str(v.get("tag") or v.get("name"))
    return str(getattr(v, "tag", None) or getattr(v, "name", v))


def known_tags(settings: Settings) -> list[str]:
    """Every dataset tag of the data repository (empty without one)."""
    try:
        import satseg.versioning as versioning
    except ImportError:
        return []
    try:
        versions = versioning.list_versions(settings)
    except Exception as e:  # no data repository yet
        log.info("no dataset versions: %s", e)
        return []
    return sorted((_tag_name(v) for v in versions), key=lambda t: (t.rsplit("-v", 1)[0], _n(t)))


def _n(tag: str) -> int:
    try:
        return split_tag(tag)[1]
    except MonitorError:
        return -1


def latest_tags(settings: Settings) -> dict[str, str]:
    """Newest tag of each dataset."""
    out: dict[str, str] = {}
    for t in known_tags(settings):
        m = _TAG.match(t)
        if m and _n(t) >= _n(out.get(m["dataset"], "x-v-1")):
            out[m["dataset"]] = t
    return out


def tag_dir(settings: Settings, tag: str) -> Path:
    """Processed dataset directory holding ``tag`` (the working copy if it is the newest)."""
    dataset, _ = split_tag(tag)
    tags = known_tags(settings)
    if tag not in tags:
        raise MonitorError(f"unknown dataset tag {tag!r}; known tags: {', '.join(tags) or 'none'}")
    import satseg.versioning as versioning

    if latest_tags(settings).get(dataset) == tag:
        d = Path(versioning.dataset_dir(settings, dataset))
        if (d / FEATURES_CSV).is_file():
            return d
    return Path(versioning.checkout(settings, tag))


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
    try:
        import satseg.registry as registry

        champ = registry.champion(settings)
    except ImportError:
        champ = None
    except Exception as e:  # no registry yet / tracking store empty
        log.info("no champion to take the reference from: %s", e)
        champ = None
    if champ is not None and getattr(champ, "dataset_tag", None):
        return str(champ.dataset_tag)
    latest = latest_tags(settings)
    return max(latest.values(), key=_n) if latest else None
