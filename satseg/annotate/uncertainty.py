"""How unsure the model is about each window of a predicted scene, read one window at a time.

Inference writes an uncertainty COG beside the probability (``uncertainty.tif``, uint8,
0-255 = 0-1): the binary entropy of the blended probability, or with TTA 4 x the variance of
the views. The score of a window is its mean over the valid pixels. A prediction made before
that COG existed has only ``prob.tif`` (the foreground probability as uint8): its windows are
scored by the binary entropy ``H(p) = -p log2 p - (1-p) log2 (1-p)`` of that, looked up from a
256-entry table (1 at p = 0.5, 0 at p = 0 or 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satseg.io.gdal import gdal_context

UNCERTAINTY_COG = "uncertainty.tif"
PROBABILITY_COG = "prob.tif"


def _entropy_table() -> np.ndarray:
    p = np.arange(256, dtype=np.float64) / 255.0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.nan_to_num(h, nan=0.0).astype(np.float32)


ENTROPY = _entropy_table()


@dataclass(frozen=True)
class WindowScore:
    """One window of a scene (row, col, height, width in pixels) and its uncertainty."""

    row: int
    col: int
    height: int
    width: int
    score: float
    valid: float  # share of valid (non-nodata) pixels


def grid(width: int, height: int, size: int) -> Iterator[tuple[int, int, int, int]]:
    """Non-overlapping ``size`` windows covering the scene; the last row/column is shifted
    inwards (not clipped) so every window has the full size when the scene allows it."""
    for row in _starts(height, size):
        for col in _starts(width, size):
            yield row, col, min(size, height - row), min(size, width - col)


def _starts(extent: int, size: int) -> list[int]:
    if extent <= size:
        return [0]
    starts = list(range(0, extent - size + 1, size))
    if starts[-1] + size < extent:
        starts.append(extent - size)
    return starts


def score_windows(out_dir: Path, size: int) -> Iterator[WindowScore]:
    """Every window of the prediction in ``out_dir`` with its score (the uncertainty COG when
    present, else the probability's entropy), reading one strip of ``size`` rows at a time
    (each block decoded once; memory bounded by the scene's width, not its area)."""
    import rasterio
    from rasterio.windows import Window

    tta = (out_dir / UNCERTAINTY_COG).is_file()
    path = out_dir / (UNCERTAINTY_COG if tta else PROBABILITY_COG)
    with gdal_context(), rasterio.open(path) as src:
        for row in _starts(src.height, size):
            h = min(size, src.height - row)
            strip = Window(0, row, src.width, h)
            data, valid = src.read(1, window=strip), src.read_masks(1, window=strip) > 0
            for col in _starts(src.width, size):
                w = min(size, src.width - col)
                yield _score(data[:, col : col + w], valid[:, col : col + w], row, col, tta)


def _score(data: np.ndarray, valid: np.ndarray, row: int, col: int, tta: bool) -> WindowScore:
    h, w = data.shape
    n = int(valid.sum())
    if n == 0:
        return WindowScore(row, col, h, w, 0.0, 0.0)
    values = data[valid].astype(np.float32) / 255.0 if tta else ENTROPY[data[valid]]
    return WindowScore(row, col, h, w, float(values.mean()), n / valid.size)
