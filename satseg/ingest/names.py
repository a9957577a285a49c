"""Which file and dataset names satseg accepts, and where a dropped file's dataset comes from.

Names end up in paths (raw/, processed/, DVC, git tags) and in shell-adjacent tooling, so
only a conservative set is accepted: ASCII letters, digits, ``.``, ``_``, ``-``, starting with a
letter or digit, no ``..``. Anything else (spaces, backslashes, ``;``, leading ``-``, traversal)
is quarantined rather than "fixed", so the sender sees exactly what was refused.
"""

from __future__ import annotations

import re

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SAFE_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT_DATASET = "default"
DATASET_SEP = "__"
RESERVED_DATASETS = {"predict"}  # inbox/predict/ feeds satseg_predict, not ingest


def is_safe_name(name: str) -> bool:
    return bool(SAFE_NAME.match(name)) and ".." not in name


def is_safe_dataset(name: str) -> bool:
    return bool(SAFE_DATASET.match(name)) and name not in RESERVED_DATASETS


def sanitize(name: str) -> str:
    """A harmless stand-in for an unsafe name (the original is kept in the error record)."""
    s = re.sub(r"[^A-Za-z0-9._-]", "_", name).replace("..", "__")
    s = s.lstrip(".-") or "unnamed"
    return s[:128]


def dataset_of(parts: tuple[str, ...]) -> tuple[str, str]:
    """(dataset, scene-name prefix removed) from a path relative to the inbox.

    ``<dataset>/.../<file>`` -> the folder; ``<dataset>__<scene>.<ext>`` at the top -> the
    prefix; anything else -> ``default``.
    """
    if len(parts) > 1:
        return parts[0], parts[-1]
    name = parts[0]
    if DATASET_SEP in name:
        ds, rest = name.split(DATASET_SEP, 1)
        if ds and rest:
            return ds, rest
    return DEFAULT_DATASET, name
