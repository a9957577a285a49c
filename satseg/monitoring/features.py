"""Image features for drift detection, shared by ingest (reference) and monitoring (current).

One row per patch / window sample: per-band mean, std, 2/50/98 percentiles, brightness,
contrast, edge density and nodata share. Cheap enough to compute on every patch.
Sharpness (mean gradient, Laplacian variance) is there because blur (defocus, haze,
resampling) barely moves intensity statistics but changes what a segmenter sees; saturation
separates land covers of similar brightness.
"""

from __future__ import annotations

import numpy as np

BAND_NAMES = ("r", "g", "b")


def feature_names() -> list[str]:
    names = []
    for b in BAND_NAMES:
        names += [f"{b}_mean", f"{b}_std", f"{b}_p02", f"{b}_p50", f"{b}_p98"]
    return [
        *names,
        "brightness",
        "contrast",
        "edge_density",
        "gradient_mean",
        "laplacian_var",
        "saturation",
        "nodata_frac",
    ]


def _percentiles(counts: np.ndarray, n: int, qs: tuple[float, ...]) -> list[float]:
    """np.percentile's linear interpolation, read off a 256-bin histogram (no sort)."""
    cdf = np.cumsum(counts)
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k0 = int(np.floor(pos))
        k1 = min(k0 + 1, n - 1)
        v0 = int(np.searchsorted(cdf, k0, side="right"))
        v1 = int(np.searchsorted(cdf, k1, side="right"))
        out.append(v0 + (pos - k0) * (v1 - v0))
    return out


_LEVELS = np.arange(256, dtype=np.float64)


def image_features(rgb: np.ndarray, nodata: np.ndarray | None = None) -> dict[str, float]:
    """Features of one (h, w, 3) uint8 RGB sample; ``nodata`` (h, w) bool excludes pixels.

    Band statistics come from histograms (uint8 has 256 levels), so a 256 px patch costs
    about 1 ms: ingest computes this for every patch it writes.
    """
    h, w = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    valid = np.ones((h, w), bool) if nodata is None else ~nodata
    all_valid = bool(valid.all())
    px = rgb.reshape(-1, 3) if all_valid else rgb[valid]  # (n, 3) uint8
    if px.shape[0] == 0:
        px = np.zeros((1, 3), np.uint8)
    n = int(px.shape[0])
    out: dict[str, float] = {}
    for i, b in enumerate(BAND_NAMES):
        counts = np.bincount(px[:, i], minlength=256)
        mean = float(counts @ _LEVELS / n)
        p02, p50, p98 = _percentiles(counts, n, (2, 50, 98))
        out[f"{b}_mean"] = mean
        out[f"{b}_std"] = float(np.sqrt(counts @ (_LEVELS - mean) ** 2 / n))
        out[f"{b}_p02"] = float(p02)
        out[f"{b}_p50"] = float(p50)
        out[f"{b}_p98"] = float(p98)
    r, g, b_ = (rgb[..., i].astype(np.float32) for i in range(3))  # planar: fast reductions
    grey = (r + g + b_) * np.float32(1.0 / 3.0)
    gv = grey.ravel() if all_valid else grey[valid]
    if gv.size == 0:
        gv = np.zeros(1, np.float32)
    out["brightness"] = float(gv.mean())
    out["contrast"] = float(gv.std())
    gx = np.abs(np.diff(grey, axis=1))
    gy = np.abs(np.diff(grey, axis=0))
    edges = (gx[:-1, :] > 20) | (gy[:, :-1] > 20)
    out["edge_density"] = float(edges.mean()) if edges.size else 0.0
    out["gradient_mean"] = float((gx[:-1, :] + gy[:, :-1]).mean()) if edges.size else 0.0
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    out["laplacian_var"] = float(lap.var()) if lap.size else 0.0
    hi = np.maximum(np.maximum(r, g), b_)
    lo = np.minimum(np.minimum(r, g), b_)
    sat = (hi - lo) / np.maximum(hi, 1.0)
    out["saturation"] = float(
        sat.mean() if all_valid else sat[valid].mean() if valid.any() else 0.0
    )
    out["nodata_frac"] = float(1.0 - valid.mean())
    return out
