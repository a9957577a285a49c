"""The OpenCV implementation of ``image_features`` equals the plain numpy definition."""

from __future__ import annotations

import numpy as np
import pytest

from satseg.monitoring.features import feature_names, image_features


def reference(rgb: np.ndarray, nodata: np.ndarray | None) -> dict[str, float]:
    """The definitions, written the obvious (slow) way."""
    valid = np.ones(rgb.shape[:2], bool) if nodata is None else ~nodata
    px = rgb[valid] if valid.any() else np.zeros((1, 3), np.uint8)
    out: dict[str, float] = {}
    for i, b in enumerate("rgb"):
        v = px[:, i].astype(np.float64)
        out[f"{b}_mean"], out[f"{b}_std"] = v.mean(), v.std()
        for q in (2, 50, 98):
            out[f"{b}_p{q:02d}"] = float(np.percentile(v, q))
    grey = rgb.astype(np.float64).sum(-1) / 3.0
    gv = grey[valid] if valid.any() else np.zeros(1)
    out["brightness"], out["contrast"] = gv.mean(), gv.std()
    gx = np.abs(np.diff(grey, axis=1))[:-1, :]
    gy = np.abs(np.diff(grey, axis=0))[:, :-1]
    # a grey step above 20, compared exactly: on the integer band sums (3 x grey) it is > 60,
    # where (a - b) / 3 in floating point can land either side of 20 when a - b is 60
    total = rgb.astype(np.int64).sum(-1)
    tx = np.abs(np.diff(total, axis=1))[:-1, :]
    ty = np.abs(np.diff(total, axis=0))[:, :-1]
    out["edge_density"] = float(((tx > 60) | (ty > 60)).mean())
    out["gradient_mean"] = float((gx + gy).mean())
    g = grey
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    out["laplacian_var"] = float(lap.var())
    f = rgb.astype(np.float64)
    hi, lo = f.max(-1), f.min(-1)
    sat = (hi - lo) / np.maximum(hi, 1.0)
    out["saturation"] = float(sat[valid].mean()) if valid.any() else 0.0
    out["nodata_frac"] = float(1.0 - valid.mean())
    return out


def _scene(seed: int, h: int = 64, w: int = 80) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (h, w, 3))
    base[h // 4 : h // 2, w // 3 : w // 2] += 55  # a bright "roof": edges and gradients
    return base.astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("with_nodata", [False, True])
def test_fast_features_match_the_definitions(seed: int, with_nodata: bool) -> None:
    rgb = _scene(seed)
    nodata = None
    if with_nodata:
        nodata = np.zeros(rgb.shape[:2], bool)
        nodata[:20] = True
    got, want = image_features(rgb, nodata), reference(rgb, nodata)
    assert list(got) == feature_names()
    for name in feature_names():
        assert got[name] == pytest.approx(want[name], rel=1e-6, abs=1e-9), name


def test_all_nodata_and_tiny_samples_do_not_fail() -> None:
    rgb = _scene(3, 8, 8)
    everything = image_features(rgb, np.ones((8, 8), bool))
    assert everything["nodata_frac"] == 1.0 and everything["saturation"] == 0.0
    one_px = image_features(rgb[:1, :1])
    assert one_px["edge_density"] == 0.0 and one_px["laplacian_var"] == 0.0
    assert one_px["r_mean"] == float(rgb[0, 0, 0])
