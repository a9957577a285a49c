"""Cut a scene into image/mask patch PNGs, strip by strip, encoding on a thread pool.

Memory stays at a few strips (``patch_size`` rows x scene width) whatever the scene area.
PNG encoding dominates the cost (``satseg.preprocess.png``: ISA-L deflate, which releases
the GIL), so a small thread pool overlaps it with reading. How image PNGs are compressed is
a parameter (``preprocess.png_compression``); ``bench/preprocess.py`` measures both modes.

Edges are padded (zeros, counted as nodata) so every pixel of the scene lands in a patch;
patches with more nodata than ``nodata_max`` are dropped, not written.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satseg.io.progress import progress
from satseg.monitoring.features import band_histograms, image_features
from satseg.preprocess.masks import PolygonSet
from satseg.preprocess.png import normalise_mode, write_png
from satseg.preprocess.source import MaskTiffSource, StripSource


@dataclass(frozen=True)
class PatchParams:
    patch_size: int = 256
    stride: int = 256
    positive_threshold: float = 0.05
    nodata_max: float = 0.5
    png: str = "deflate"  # image PNG encoding: deflate (compact) | none (stored, fastest)

    @classmethod
    def from_params(cls, pre: dict[str, Any]) -> PatchParams:
        p = cls(
            patch_size=int(pre.get("patch_size", 256)),
            stride=int(pre.get("stride", pre.get("patch_size", 256))),
            positive_threshold=float(pre.get("positive_threshold", 0.05)),
            nodata_max=float(pre.get("nodata_max", 0.5)),
            png=normalise_mode(str(pre.get("png_compression", "deflate"))),
        )
        if p.patch_size < 8 or p.stride < 1 or p.stride > p.patch_size:
            raise ValueError(f"bad patch geometry: patch_size={p.patch_size}, stride={p.stride}")
        return p


@dataclass
class PatchedScene:
    """What ``patch_scene`` wrote: one record per kept patch, histograms, feature rows."""

    scene: str
    width: int
    height: int
    patches: list[dict[str, Any]] = field(default_factory=list)
    features: list[dict[str, float]] = field(default_factory=list)
    hist: np.ndarray = field(default_factory=lambda: np.zeros((3, 256), np.int64))
    dropped_nodata: int = 0
    grid: tuple[int, int] = (0, 0)

    def summary(self) -> dict[str, Any]:
        pos = sum(1 for p in self.patches if p["positive"])
        return {
            "patches": len(self.patches),
            "positive": pos,
            "dropped_nodata": self.dropped_nodata,
            "grid": list(self.grid),
        }


def grid_positions(length: int, size: int, stride: int) -> list[int]:
    """Start offsets covering [0, length): the last patch may run past the edge (padded)."""
    if length <= size:
        return [0]
    n = -(-(length - size) // stride) + 1
    return [i * stride for i in range(n)]


def write_pair(
    images: Path, masks: Path, name: str, rgb: np.ndarray, mask01: np.ndarray, png: str
) -> None:
    """Write one patch: RGB image PNG and its mask as a 0/255 single-channel PNG."""
    write_png(images / name, rgb, png)
    write_png(masks / name, mask01 * np.uint8(255))


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def patch_scene(
    source: StripSource,
    labels: PolygonSet | MaskTiffSource,
    out_dir: Path,
    scene: str,
    params: PatchParams,
    *,
    workers: int | None = None,
    features: bool = True,
    show_progress: bool | None = None,
) -> PatchedScene:
    """Write ``out_dir/{images,masks}/<scene>_r<row>_c<col>.png`` for every kept patch."""
    images, masks = out_dir / "images", out_dir / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    P, W, H = params.patch_size, source.width, source.height
    rows = grid_positions(H, P, params.stride)
    cols = grid_positions(W, P, params.stride)
    wpad = cols[-1] + P
    out = PatchedScene(scene=scene, width=W, height=H, grid=(len(rows), len(cols)))
    n_workers = workers or default_workers()

    def job(name: str, rgb: np.ndarray, m: np.ndarray, nd: np.ndarray) -> dict[str, Any] | None:
        nodata = int(np.count_nonzero(nd)) / nd.size  # (a bool mean casts each pixel to float)
        if nodata > params.nodata_max:
            return None
        rgb = np.ascontiguousarray(rgb)  # one copy, shared by the encoder and the features
        write_pair(images, masks, name, rgb, m, params.png)
        hist = band_histograms(rgb, ~nd if nodata else None)
        rec: dict[str, Any] = {
            "fg": int(np.count_nonzero(m)) / m.size,
            "nodata": nodata,
            "hist": hist,
        }
        if features:
            # the band histograms are the same counts the features start from: pass them on
            rec["features"] = image_features(rgb, nd if nodata else None, band_counts=hist)
        return rec

    pending: deque[tuple[str, int, int, Future[dict[str, Any] | None]]] = deque()

    def collect(limit: int) -> None:
        while len(pending) > limit:
            name, r, c, fut = pending.popleft()
            rec = fut.result()
            if rec is None:
                out.dropped_nodata += 1
                continue
            out.hist += rec.pop("hist")
            if "features" in rec:
                out.features.append(rec.pop("features"))
            rec.update(
                id=name.removesuffix(".png"),
                row=r,
                col=c,
                positive=rec["fg"] > params.positive_threshold,
            )
            out.patches.append(rec)

    with ThreadPoolExecutor(n_workers) as pool:
        for r in progress(rows, desc=f"patch {scene}", enabled=show_progress):
            h = min(P, H - r)
            rgb, nd = source.read(r, h)
            if h < P or wpad > W:  # pad the edge strip: zeros, counted as nodata
                rgb = _pad(rgb, (P, wpad, 3), 0)
                nd = _pad(nd, (P, wpad), True)
            mask = np.zeros((P, wpad), np.uint8)
            if isinstance(labels, PolygonSet):
                labels.burn(mask, r, 0)
            else:
                mask[:h, :W] = labels.read(r, h)
            if nd.any():
                mask[nd] = 0  # no labels on nodata or padding
            for c in cols:
                name = f"{scene}_r{r:05d}_c{c:05d}.png"
                sl = np.s_[:, c : c + P]
                fut = pool.submit(job, name, rgb[sl], mask[sl], nd[sl])
                pending.append((name, r, c, fut))
            collect(limit=n_workers * len(cols))  # at most ~two strips in flight
        collect(limit=0)
    return out


def _pad(a: np.ndarray, shape: tuple[int, ...], fill: Any) -> np.ndarray:
    out = np.full(shape, fill, a.dtype)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def hist_stats(hist: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-band mean, std, min/max and percentiles from (3, 256) counts (manifest band_stats)."""
    from satseg.monitoring.features import BAND_NAMES

    stats: dict[str, dict[str, float]] = {}
    values = np.arange(256, dtype=np.float64)
    for i, b in enumerate(BAND_NAMES):
        counts = hist[i].astype(np.float64)
        n = counts.sum()
        if n == 0:
            stats[b] = {"count": 0}
            continue
        mean = float((counts * values).sum() / n)
        std = float(np.sqrt((counts * (values - mean) ** 2).sum() / n))
        cum = np.cumsum(counts)
        nz = np.nonzero(counts)[0]
        s: dict[str, float] = {
            "count": int(n),
            "mean": round(mean, 4),
            "std": round(std, 4),
            "min": int(nz[0]),
            "max": int(nz[-1]),
        }
        for q in (2, 25, 50, 75, 98):
            s[f"p{q:02d}"] = int(np.searchsorted(cum, n * q / 100.0))
        stats[b] = s
    return stats
