"""Current imagery for drift checks: find it, then sample feature windows reproducibly.

Scenes can be far larger than memory, so only a bounded number of patch-sized windows is
read from each, through the scene reader's window reads (``satseg.io.scene``: the same bands,
scaling, nodata and GDAL settings as ingest and inference). The windows are
chosen by a seed plus the file name, so the same scene always yields the same sample and
monitoring runs can be compared and re-run.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from satseg.io.raster import RasterError
from satseg.io.scene import open_scene
from satseg.io.sniff import PixelLimits
from satseg.monitoring import MonitorError
from satseg.monitoring.features import feature_names, image_features
from satseg.vocab import IMAGE_SUFFIXES, NOT_IMAGERY_STEMS

if TYPE_CHECKING:
    import pandas as pd

    from satseg.config import Settings

log = logging.getLogger(__name__)

IMAGE_EXTS = tuple(sorted(IMAGE_SUFFIXES))  # for str.endswith
Window = tuple[int, int, int, int]  # row, col, height, width


def sample_windows(width: int, height: int, size: int, k: int, seed: int, key: str) -> list[Window]:
    """Up to ``k`` non-overlapping ``size``-px grid windows, picked by ``seed`` and ``key``."""
    rows = [0] if height <= size else list(range(0, height - size + 1, size))
    cols = [0] if width <= size else list(range(0, width - size + 1, size))
    cells = [(r, c) for r in rows for c in cols]
    if len(cells) > k:
        rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
        cells = [cells[i] for i in sorted(rng.choice(len(cells), k, replace=False))]
    return [(r, c, min(size, height - r), min(size, width - c)) for r, c in cells]


def scene_features(
    path: Path | str,
    *,
    size: int,
    k: int,
    seed: int = 0,
    bands: list[int] | None = None,
    scale: str = "percentile",
    nodata_max: float = 1.0,
    limits: PixelLimits | None = None,
) -> list[dict[str, float]]:
    """Feature rows of up to ``k`` windows of one scene (windows mostly nodata are dropped)."""
    p = Path(path)
    if not p.is_file():
        raise MonitorError(f"{p}: no such file")
    try:
        with open_scene(p, bands, scale, limits=limits) as scene:
            wins = sample_windows(scene.width, scene.height, size, k, seed, p.name)
            rows = [image_features(*scene.window(*win)) for win in wins]
    except RasterError as e:
        if e.check == "decode":
            raise MonitorError(f"{p}: not a readable image, corrupt or truncated ({e})") from e
        raise MonitorError(f"{p}: {e}") from e
    except Exception as e:  # rasterio/GDAL errors the reader did not name
        raise MonitorError(f"{p}: not a readable image ({type(e).__name__}: {e})") from e
    return [r for r in rows if r["nodata_frac"] <= nodata_max]


def features_frame(
    paths: Sequence[Path | str],
    *,
    size: int,
    total: int,
    seed: int = 0,
    bands: list[int] | None = None,
    scale: str = "percentile",
    nodata_max: float = 1.0,
    skipped: list[str] | None = None,
    limits: PixelLimits | None = None,
) -> pd.DataFrame:
    """One row per sampled window of all ``paths`` (about ``total`` rows, spread evenly).

    An unreadable scene raises MonitorError, unless a ``skipped`` list is given: then its
    reason is appended there and the other scenes are still used.
    """
    import pandas as pd

    per_scene = max(1, math.ceil(total / max(1, len(paths))))
    rows: list[dict[str, Any]] = []
    for p in paths:
        try:
            feats = scene_features(
                p,
                size=size,
                k=per_scene,
                seed=seed,
                bands=bands,
                scale=scale,
                nodata_max=nodata_max,
                limits=limits,
            )
        except MonitorError as e:
            if skipped is None:
                raise
            log.warning("skipping %s", e)
            skipped.append(str(e))
            continue
        rows += [{"scene": Path(p).name, **f} for f in feats]
    return pd.DataFrame(rows, columns=["scene", *feature_names()])


def is_imagery(p: Path) -> bool:
    stem = p.stem.lower()
    return (
        p.is_file()
        and p.suffix.lower() in IMAGE_EXTS
        and not p.name.startswith(".")
        and not any(stem.endswith(s) or stem == s.strip("_") for s in NOT_IMAGERY_STEMS)
    )


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given, directories searched recursively for imagery; a missing path is an error."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if is_imagery(f))
        elif p.is_file():
            out.append(p)
        else:
            raise MonitorError(f"{p}: no such file or directory")
    return sorted(set(out))


def _prediction_sources(predictions: Path) -> list[Path]:
    """Input scenes named by the STAC items of predictions (assets/links outside predictions/)."""
    found = []
    for item in sorted(predictions.glob("*/item.json")):
        try:
            doc = json.loads(item.read_text())
        except (OSError, ValueError):
            continue
        hrefs = [a.get("href", "") for a in (doc.get("assets") or {}).values()]
        hrefs += [link.get("href", "") for link in doc.get("links") or []]
        for href in hrefs:
            href = str(href).removeprefix("file://")
            if not href.lower().endswith(IMAGE_EXTS):
                continue
            src = (item.parent / href).resolve()
            if src.is_file() and predictions.resolve() not in src.parents:
                found.append(src)
    return found


def available_imagery(settings: Settings) -> list[Path]:
    """Every scene ingested or predicted: raw/ (predicted inputs are archived there too) and
    the sources named by prediction STAC items. The predict inbox itself is left alone: a
    scene there may still be being copied and has not been predicted yet."""
    found: set[Path] = set()
    if settings.raw.is_dir():
        found.update(f.resolve() for f in settings.raw.rglob("*") if is_imagery(f))
    if settings.predictions.is_dir():
        found.update(_prediction_sources(settings.predictions))
    return sorted(found)


def fingerprint(p: Path) -> str:
    """Identity of a file version: a replaced or rewritten scene counts as new imagery."""
    st = p.stat()
    return f"{p}|{st.st_size}|{st.st_mtime_ns}"
