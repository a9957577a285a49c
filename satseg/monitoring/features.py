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


_LEVELS = np.arange(256, dtype=np.int64)
_SQUARES = _LEVELS * _LEVELS
_QUANTILES = np.array([2.0, 50.0, 98.0]) / 100.0
_LAPLACE = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)
_ONES = np.ones((1, 3), np.float32)
_MOMENTS = np.stack([_LEVELS, _SQUARES], axis=1)  # (256, 2): sum of x, sum of x^2
_BAND_OFFSETS = np.arange(3, dtype=np.int64)[:, None]
_BAND_BINS = _BAND_OFFSETS * 256


def band_histograms(rgb: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(3, 256) int64 counts of each band of a uint8 RGB sample over the ``valid`` pixels.

    ``valid``: (h, w) bool or uint8, None = all pixels. cv2.calcHist is ~5x np.bincount.
    """
    import cv2

    m = None if valid is None else np.ascontiguousarray(valid).view(np.uint8)
    return np.stack([cv2.calcHist([rgb], [i], m, [256], [0, 256])[:, 0] for i in range(3)]).astype(
        np.int64
    )


def _band_stats(counts: np.ndarray, n: int) -> dict[str, float]:
    """Mean, std and np.percentile's linear-interpolation 2/50/98 percentiles, per band.

    Read off (3, 256) integer histograms: integer moments (no BLAS call, whose thread pool
    wakes up for a 256-long dot product) and one search of the three bands' cumulative
    counts laid end to end (no sort).
    """
    s1, s2 = (counts @ _MOMENTS).T
    means = s1 / n
    stds = np.sqrt(np.maximum(s2 / n - means * means, 0.0))
    pos = _QUANTILES * (n - 1)
    k0 = np.floor(pos).astype(np.int64)
    k1 = np.minimum(k0 + 1, n - 1)
    # band i's cumulative counts shifted by i * n: one searchsorted answers all bands
    shift = _BAND_OFFSETS * n
    cdf = (np.cumsum(counts, axis=1) + shift).ravel()
    v0 = np.searchsorted(cdf, k0 + shift, side="right") - _BAND_BINS
    v1 = np.searchsorted(cdf, k1 + shift, side="right") - _BAND_BINS
    p = (v0 + (pos - k0) * (v1 - v0)).tolist()
    out: dict[str, float] = {}
    for i, b in enumerate(BAND_NAMES):
        out[f"{b}_mean"] = float(means[i])
        out[f"{b}_std"] = float(stds[i])
        out[f"{b}_p02"], out[f"{b}_p50"], out[f"{b}_p98"] = p[i]
    return out


def image_features(
    rgb: np.ndarray, nodata: np.ndarray | None = None, *, band_counts: np.ndarray | None = None
) -> dict[str, float]:
    """Features of one (h, w, 3) uint8 RGB sample; ``nodata`` (h, w) bool excludes pixels.

    ``band_counts``: the (3, 256) histograms of the valid pixels when the caller has them
    already (ingest keeps them for the manifest's band statistics).

    Ingest computes this for every patch it writes, so it is built from OpenCV's SIMD kernels
    (about 0.2 ms for a 256 px patch; the numpy formulation cost 2 ms). Band statistics come
    from histograms (uint8 has 256 levels); sharpness features use all pixels. Grey is kept
    as the band *sum* (3 x grey): integers below 766 are exact in float32, so thresholds and
    moments are those of the definition, scaled back by 3 (or 9 for a variance) at the end.
    """
    import cv2

    h, w = rgb.shape[:2]
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.strides[1:] != (3, 1):
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)  # else a row-strided view will do
    mask = None
    if nodata is not None and nodata.any():
        mask = np.ascontiguousarray(~nodata).view(np.uint8)
    n = h * w if mask is None else int(cv2.countNonZero(mask))
    if n and band_counts is None:
        band_counts = band_histograms(rgb, mask)
    if n and band_counts is not None:
        out = _band_stats(np.asarray(band_counts, np.int64), n)
    else:  # no valid pixel: statistics of a single 0, as before
        counts = np.zeros((3, 256), np.int64)
        counts[:, 0] = 1
        out = _band_stats(counts, 1)
    grey3 = cv2.transform(rgb.astype(np.float32), _ONES)  # r + g + b = 3 x grey, exact
    if n:
        m, sd = cv2.meanStdDev(grey3, mask=mask)
        out["brightness"], out["contrast"] = float(m[0, 0]) / 3, float(sd[0, 0]) / 3
    else:
        out["brightness"] = out["contrast"] = 0.0
    if h > 1 and w > 1:
        gx = cv2.absdiff(grey3[:-1, 1:], grey3[:-1, :-1])
        gy = cv2.absdiff(grey3[1:, :-1], grey3[:-1, :-1])
        out["edge_density"] = int(np.count_nonzero((gx > 60) | (gy > 60))) / gx.size  # grey > 20
        out["gradient_mean"] = (cv2.mean(gx)[0] + cv2.mean(gy)[0]) / 3
    else:
        out["edge_density"] = out["gradient_mean"] = 0.0
    if h > 2 and w > 2:
        lap = np.ascontiguousarray(cv2.filter2D(grey3, cv2.CV_32F, _LAPLACE)[1:-1, 1:-1])
        out["laplacian_var"] = float(cv2.meanStdDev(lap)[1][0, 0] ** 2) / 9
    else:
        out["laplacian_var"] = 0.0
    r, g, b = cv2.split(rgb)
    hi = cv2.max(cv2.max(r, g), b)
    # (hi - lo) / hi; OpenCV's division gives 0 where hi == 0 (then hi - lo is 0 too)
    sat = cv2.divide(cv2.subtract(hi, cv2.min(cv2.min(r, g), b)), hi, dtype=cv2.CV_32F)
    out["saturation"] = float(cv2.mean(sat, mask=mask)[0]) if n else 0.0
    out["nodata_frac"] = 1.0 - n / (h * w) if h * w else 0.0
    return out  # in feature_names() order
