"""satseg's closed vocabularies, defined once: what counts as imagery, annotations, markers,
which file and dataset names are accepted, and the dataset version-tag format.

Names end up in paths (raw/, processed/, DVC, git tags) and in shell-adjacent tooling, so only
a conservative set is accepted: ASCII letters, digits, ``.``, ``_``, ``-``, starting with a
letter or digit, no ``..``. Anything else (spaces, backslashes, ``;``, leading ``-``,
traversal) is refused rather than "fixed", so the sender sees exactly what was refused.

Dependency-free on purpose: every package imports it, and the DAG files may too.
"""

from __future__ import annotations

import re

# --- files ---------------------------------------------------------------------------------
PLAIN_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})  # decoded whole, pixel space
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})  # GeoTIFF, read in windows
IMAGE_SUFFIXES = PLAIN_SUFFIXES | TIFF_SUFFIXES
LABELME_SUFFIX = ".json"  # LabelMe (or GeoJSON, decided by content)
GEOJSON_SUFFIX = ".geojson"
ANNOTATION_SUFFIXES = frozenset({LABELME_SUFFIX, GEOJSON_SUFFIX})
MASK_STEM_SUFFIX = "_mask"  # <stem>_mask.tif beside <stem>.<image>: a label raster
DONE_SUFFIX = ".done"  # <file>.done or <stem>.done: the sender says the upload is complete
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".filepart", ".uploading")
ERROR_RECORD_SUFFIX = ".error.json"  # quarantine/<date>/<name>.error.json
NEUTRAL_SUFFIX = ".user"  # appended to a user file whose name would read as a satseg record
RECORDS_DIR = ".satseg"  # raw/.satseg/: satseg's own records (provenance), never a user name
NOT_IMAGERY_STEMS = ("_mask", "_prob", "quicklook")  # labels and model outputs, not inputs


def is_image_name(name: str) -> bool:
    return _suffix(name) in IMAGE_SUFFIXES


def is_plain_name(name: str) -> bool:
    return _suffix(name) in PLAIN_SUFFIXES


def is_tiff_name(name: str) -> bool:
    return _suffix(name) in TIFF_SUFFIXES


def is_record_name(name: str) -> bool:
    """Names ending in ``.error.json`` are satseg's quarantine records, never user files."""
    return name.lower().endswith(ERROR_RECORD_SUFFIX)


def is_in_progress(name: str) -> bool:
    """Hidden files and ``*.part``-style temporaries are uploads still being written."""
    return name.startswith(".") or name.lower().endswith(IN_PROGRESS_SUFFIXES)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


# --- names ---------------------------------------------------------------------------------
MAX_NAME_LEN = 128
MAX_EXT_LEN = 32  # a longer "extension" is part of the name
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SAFE_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT_DATASET = "default"
DATASET_SEP = "__"  # <dataset>__<scene>.<ext> at the top of the inbox
# inbox/predict/ feeds satseg_predict, not ingest; raw/predict-done/ archives what it predicted
RESERVED_DATASETS = frozenset({"predict", "predict-done"})


def is_safe_name(name: str) -> bool:
    return bool(SAFE_NAME.match(name)) and ".." not in name and not is_record_name(name)


def is_safe_dataset(name: str) -> bool:
    return bool(SAFE_DATASET.match(name)) and name not in RESERVED_DATASETS


def check_dataset_name(dataset: str) -> str:
    """``dataset`` if it is an acceptable dataset name, else ValueError naming the rule."""
    if not is_safe_dataset(dataset):
        raise ValueError(
            f"invalid dataset name {dataset!r}: use letters, digits, '_' and '-' "
            f"(at most 64, starting with a letter or digit; not {', '.join(RESERVED_DATASETS)})"
        )
    return dataset


def split_ext(name: str) -> tuple[str, str]:
    """(stem, extension): from the first dot (``a.tar.gz`` -> ``a``, ``.tar.gz``), or the
    last one when that would be longer than ``MAX_EXT_LEN``; none when both are."""
    for dot in (name.find(".", 1), name.rfind(".")):
        if dot > 0 and len(name) - dot <= MAX_EXT_LEN:
            return name[:dot], name[dot:]
    return name, ""


def sanitize(name: str, number: int = 0) -> str:
    """A harmless stand-in for an unsafe name (the original is kept in the error record).

    At most ``MAX_NAME_LEN`` characters, cut in the stem so the extension survives; a
    ``number`` > 0 goes before the extension (``a.tif`` -> ``a.1.tif``); never a name that
    reads as a satseg record (``x.error.json`` -> ``x.error.json.user``).
    """
    s = re.sub(r"[^A-Za-z0-9._-]", "_", name).replace("..", "__")
    s = s.lstrip(".-") or "unnamed"
    if is_record_name(s):
        s += NEUTRAL_SUFFIX
    stem, ext = split_ext(s)
    tag = f".{number}" if number else ""
    out = stem[: max(1, MAX_NAME_LEN - len(tag) - len(ext))] + tag + ext
    if is_record_name(out):  # a cut that happened to end in the record suffix
        out = out[: MAX_NAME_LEN - len(NEUTRAL_SUFFIX)] + NEUTRAL_SUFFIX
    return out


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` on one line: control characters, ANSI escapes, line separators and bidi
    overrides become visible escapes (``a\\nb``), so a file name cannot forge a log line."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


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


# --- dataset version tags --------------------------------------------------------------------
TAG = re.compile(r"^(?P<dataset>[A-Za-z0-9][A-Za-z0-9_-]*)-v(?P<n>[0-9]+)$")


class TagError(ValueError):
    """A string that is not a dataset version tag (``<dataset>-v<N>``)."""


def parse_tag(tag: str) -> tuple[str, int]:
    """``demo-v3`` -> ("demo", 3); TagError for anything else."""
    m = TAG.match(tag)
    if not m:
        raise TagError(f"{tag!r} is not a dataset tag (<dataset>-v<N>)")
    return m["dataset"], int(m["n"])


def is_tag(tag: str) -> bool:
    return TAG.match(tag) is not None


def format_tag(dataset: str, number: int) -> str:
    return f"{check_dataset_name(dataset)}-v{int(number)}"


# --- approval of a new champion (promotion: approve) -----------------------------------------
APPROVE = "Approve"
REJECT = "Reject"
APPROVAL_OPTIONS = (APPROVE, REJECT)  # the two answers of the HITL request
APPROVAL_COMMENT = "comment"  # the request's form field: why (kept with the model version)


# --- annotation tasks (satseg/annotate) ------------------------------------------------------
ANNOTATION_TASK_KEY = "satseg_task"  # top-level key of an exported LabelMe file (LabelMe keeps it)
PREDICTED_LABEL = "building"  # the label of the predicted polygons in an exported task
