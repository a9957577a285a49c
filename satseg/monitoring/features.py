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


def image_features(rgb: np.ndarray, nodata: np.ndarray | None = None) -> dict[str, float]:
    """Features of one (h, w, 3) uint8 RGB sample; ``nodata`` (h, w) bool excludes pixels."""
    h, w = rgb.shape[:2]
    valid = np.ones((h, w), bool) if nodata is None else ~nodata
    out: dict[str, float] = {}
    px = rgb[valid].astype(np.float32)  # (n, 3)
    if px.shape[0] == 0:
        px = np.zeros((1, 3), np.float32)
    for i, b in enumerate(BAND_NAMES):
        v = px[:, i]
        p02, p50, p98 = np.percentile(v, [2, 50, 98])
        out[f"{b}_mean"] = float(v.mean())
        out[f"{b}_std"] = float(v.std())
        out[f"{b}_p02"] = float(p02)
        out[f"{b}_p50"] = float(p50)
        out[f"{b}_p98"] = float(p98)
    grey = rgb.astype(np.float32).mean(axis=2)
    gv = grey[valid] if valid.any() else np.zeros(1, np.float32)
    out["brightness"] = float(gv.mean())
    out["contrast"] = float(gv.std())
    gx = np.abs(np.diff(grey, axis=1))
    gy = np.abs(np.diff(grey, axis=0))
    edges = (gx[:-1, :] > 20).astype(np.float32) + (gy[:, :-1] > 20).astype(np.float32)
    out["edge_density"] = float((edges > 0).mean()) if edges.size else 0.0
    out["gradient_mean"] = float((gx[:-1, :] + gy[:, :-1]).mean()) if edges.size else 0.0
    lap = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    out["laplacian_var"] = float(lap.var()) if lap.size else 0.0
    hi, lo = px.max(axis=1), px.min(axis=1)
    out["saturation"] = float(((hi - lo) / np.maximum(hi, 1.0)).mean())
    out["nodata_frac"] = float(1.0 - valid.mean())
    return out
