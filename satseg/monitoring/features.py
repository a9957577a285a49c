"""Image features for drift detection, shared by ingest (reference) and monitoring (current).

One row per patch / window sample: per-band mean, std, 2/50/98 percentiles, brightness,
contrast, edge density and nodata share. Cheap enough to compute on every patch.
"""

from __future__ import annotations

import numpy as np

BAND_NAMES = ("r", "g", "b")


def feature_names() -> list[str]:
    names = []
    for b in BAND_NAMES:
        names += [f"{b}_mean", f"{b}_std", f"{b}_p02", f"{b}_p50", f"{b}_p98"]
    return [*names, "brightness", "contrast", "edge_density", "nodata_frac"]


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
    out["nodata_frac"] = float(1.0 - valid.mean())
    return out
