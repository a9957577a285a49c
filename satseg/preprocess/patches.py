"""Cut a scene into image/mask patch PNGs, strip by strip, in a few forked processes.

Memory stays at a few strips (``patch_size`` rows x scene width) per process whatever the
scene area. Per-patch work is PNG encoding (``satseg.preprocess.png``), band histograms
and drift features: many short calls into OpenCV, numpy and ISA-L. Threads serialised on
the GIL between those calls (a 2-thread pool kept 1.7 of 2 CPUs busy and spent ~9 % of
its time switching), so on Linux the strips are shared among forked processes instead,
each cutting its share serially (``satseg.io.forkpool``); results come back through a pipe
and are merged in (row, col) order, so the output does not depend on the number of processes. Elsewhere,
or with ``workers=1``, one process does it all.

Edges are padded (zeros, counted as nodata) so every pixel of the scene lands in a patch;
patches with more nodata than ``nodata_max`` are dropped, not written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satseg.classes import IGNORE, ClassTable
from satseg.cpus import available_cpus
from satseg.io.forkpool import can_fork, run_shares
from satseg.io.mask import MaskReader
from satseg.io.progress import progress
from satseg.io.scene import SceneReader
from satseg.monitoring.features import band_histograms, image_features
from satseg.params import PreprocessParams, default_of
from satseg.preprocess.masks import PolygonSet
from satseg.preprocess.png import normalise_mode, write_png

_PRE = PreprocessParams


@dataclass(frozen=True)
class PatchParams:
    """How a scene is cut; the defaults are ``PreprocessParams``'s (``png`` from png_compression)."""

    patch_size: int = default_of(_PRE, "patch_size")
    stride: int = default_of(_PRE, "patch_size")  # stride: null = patch_size
    positive_threshold: float = default_of(_PRE, "positive_threshold")
    nodata_max: float = default_of(_PRE, "nodata_max")
    png: str = default_of(_PRE, "png_compression")  # deflate (compact) | none (stored, fastest)

    @classmethod
    def from_params(cls, pre: PreprocessParams) -> PatchParams:
        """From the validated ``preprocess:`` section (geometry checked there)."""
        return cls(
            patch_size=pre.patch_size,
            stride=pre.stride or pre.patch_size,
            positive_threshold=pre.positive_threshold,
            nodata_max=pre.nodata_max,
            png=normalise_mode(pre.png_compression),
        )


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
        out: dict[str, Any] = {
            "patches": len(self.patches),
            "positive": pos,
            "dropped_nodata": self.dropped_nodata,
            "grid": list(self.grid),
        }
        if self.patches and "px" in self.patches[0]:  # multi-class: pixels per class + ignore
            out["class_pixels"] = np.sum([p["px"] for p in self.patches], axis=0).tolist()
        return out


def grid_positions(length: int, size: int, stride: int) -> list[int]:
    """Start offsets covering [0, length): the last patch may run past the edge (padded)."""
    if length <= size:
        return [0]
    n = -(-(length - size) // stride) + 1
    return [i * stride for i in range(n)]


def default_workers() -> int:
    return max(1, min(4, available_cpus()))


def share_rows(rows: list[int], n: int, group: int) -> list[list[int]]:
    """Strip start rows for each of ``n`` processes: whole groups of ``group`` rows, dealt out
    in turn, so that a GeoTIFF block row is decoded by one process and work stays balanced
    across the scene (nodata-heavy parts are cheap)."""
    shares: list[list[int]] = [[] for _ in range(n)]
    for r in rows:
        shares[(r // max(group, 1)) % n].append(r)
    return [s for s in shares if s]


@dataclass
class _Part:
    """What one process cut: kept patch records with their features, histograms, drops."""

    patches: list[dict[str, Any]] = field(default_factory=list)
    features: list[dict[str, float]] = field(default_factory=list)
    hist: np.ndarray = field(default_factory=lambda: np.zeros((3, 256), np.int64))
    dropped_nodata: int = 0


@dataclass
class _Cutter:
    images: Path
    masks: Path
    scene: str
    params: PatchParams
    cols: list[int]
    wpad: int
    features: bool
    table: ClassTable | None = None  # multi-class: class-index masks, IGNORE on nodata

    def run(
        self,
        source: SceneReader,
        labels: PolygonSet | MaskReader,
        rows: list[int],
        *,
        show_progress: bool | None = False,
    ) -> _Part:
        """Cut the strips starting at ``rows``; the mask buffer is reused from strip to strip.

        Patches are views of the strip; only edge patches (past the scene's right or bottom
        edge) are copied, into zero padding counted as nodata.
        """
        part = _Part()
        P, W, H = self.params.patch_size, source.width, source.height
        mask = np.empty((P, self.wpad), np.uint8)
        t = self.table
        fill, off = (0, 0) if t is None else (t.unlabeled, IGNORE)  # uncovered, nodata / padding
        for r in progress(rows, desc=f"patch {self.scene}", enabled=show_progress):
            h = min(P, H - r)
            rgb, nd = source.rows(r, r + h)
            mask.fill(off)
            inside = mask[:h, :W]  # padding stays 0 (binary) / IGNORE (classes)
            inside.fill(fill)
            if isinstance(labels, PolygonSet):
                labels.burn(inside, r, 0, 255)
            elif t is None:
                np.multiply(labels.rows(r, r + h), 255, out=inside)
            else:
                inside[...] = labels.rows(r, r + h)  # class values through the table's LUT
            has_nodata = bool(nd.any())
            if has_nodata:
                inside[nd] = off  # no labels on nodata
            for c in self.cols:
                w = min(P, W - c)
                if h < P or w < P:
                    prgb = np.zeros((P, P, 3), np.uint8)
                    prgb[:h, :w] = rgb[:, c : c + w]
                    pnd = np.ones((P, P), bool)
                    pnd[:h, :w] = nd[:, c : c + w]
                    self._patch(part, r, c, prgb, mask[:, c : c + P], pnd)
                else:
                    sl = np.s_[:, c : c + P]
                    self._patch(part, r, c, rgb[sl], mask[sl], nd[sl] if has_nodata else None)
        return part

    def _patch(
        self, part: _Part, r: int, c: int, rgb: np.ndarray, m: np.ndarray, nd: np.ndarray | None
    ) -> None:
        import cv2

        nodata = 0.0 if nd is None else int(np.count_nonzero(nd)) / nd.size
        if nodata > self.params.nodata_max:
            part.dropped_nodata += 1
            return
        name = f"{self.scene}_r{r:05d}_c{c:05d}"
        write_png(self.images / f"{name}.png", rgb, self.params.png)
        write_png(self.masks / f"{name}.png", m)  # 0/255 single channel
        hist = band_histograms(rgb, None if nd is None or not nodata else ~nd)
        part.hist += hist
        if self.features:
            # the band histograms are the same counts the features start from: pass them on
            nd_px = nd if nodata else None
            part.features.append(image_features(rgb, nd_px, band_counts=hist))
        rec: dict[str, Any] = {}
        if self.table is None:
            fg = cv2.countNonZero(m) / m.size
        else:  # pixels per class, then ignored ones; fg = labelled, non-background share
            counts = np.bincount(m.ravel(), minlength=256)
            rec["px"] = [*counts[: len(self.table)].tolist(), int(counts[IGNORE])]
            bg = int(counts[self.table.unlabeled]) if self.table.unlabeled != IGNORE else 0
            fg = 1.0 - (int(counts[IGNORE]) + bg) / m.size
        part.patches.append(
            {
                "fg": fg,
                "nodata": nodata,
                "id": name,
                "row": r,
                "col": c,
                "positive": fg > self.params.positive_threshold,
                **rec,
            }
        )


def patch_scene(
    source: SceneReader,
    labels: PolygonSet | MaskReader,
    out_dir: Path,
    scene: str,
    params: PatchParams,
    *,
    workers: int | None = None,
    features: bool = True,
    show_progress: bool | None = None,
    table: ClassTable | None = None,
) -> PatchedScene:
    """Write ``out_dir/{images,masks}/<scene>_r<row>_c<col>.png`` for every kept patch.

    Masks are 0/255 (binary) or, with a class ``table``, class indices with IGNORE (255) on
    nodata, padding and (``ingest.unlabeled: ignore``) pixels no label covers.

    ``workers``: processes (default: the CPU count, at most 4). The caller's process cuts
    one share itself; the others are forked and must be able to ``reopen`` the sources.
    """
    images, masks = out_dir / "images", out_dir / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    P, W, H = params.patch_size, source.width, source.height
    rows = grid_positions(H, P, params.stride)
    cols = grid_positions(W, P, params.stride)
    cutter = _Cutter(images, masks, scene, params, cols, cols[-1] + P, features, table)
    n = workers or default_workers()
    if n > 1 and not (can_fork() and hasattr(source, "reopen")):
        n = 1
    group = max(P, int(getattr(source, "block_rows", 0) or 0))

    def cut(share: list[int], forked: bool) -> _Part:
        if forked:  # a forked worker reads through its own file handles
            return _cut_reopened(cutter, source, labels, share)
        return cutter.run(source, labels, share, show_progress=show_progress)

    parts = run_shares(share_rows(rows, n, group), cut, label=f"patch {scene}")
    return _merge(PatchedScene(scene=scene, width=W, height=H, grid=(len(rows), len(cols))), parts)


def _cut_reopened(
    cutter: _Cutter, source: SceneReader, labels: PolygonSet | MaskReader, rows: list[int]
) -> _Part:
    """A forked worker's share, read through its own file handles."""
    own = labels if isinstance(labels, PolygonSet) else labels.reopen()
    return cutter.run(source.reopen(), own, rows)


def _merge(out: PatchedScene, parts: list[_Part]) -> PatchedScene:
    """Patches (and their feature rows) of all processes in (row, col) order."""
    recs: list[tuple[dict[str, Any], dict[str, float] | None]] = []
    for part in parts:
        feats: list[dict[str, float] | None] = list(part.features) or [None] * len(part.patches)
        recs += zip(part.patches, feats, strict=True)
        out.hist += part.hist
        out.dropped_nodata += part.dropped_nodata
    recs.sort(key=lambda rf: (rf[0]["row"], rf[0]["col"]))
    out.patches = [rec for rec, _ in recs]
    out.features = [f for _, f in recs if f is not None]
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
