"""Benchmark of the annotation queue's uncertainty scan (``satseg.annotate.uncertainty``).

    python bench/annotate.py                  # 4000² and 12000² probability COGs
    python bench/annotate.py --sizes 2000     # quicker
    python bench/annotate.py --sizes 20000 --only windowed

For each size a tiled, deflated uint8 ``prob.tif`` (smooth blobs, like a model's output) is
written once into the work folder, then, each in its own subprocess so that its peak RSS
(``ru_maxrss``) is its own:

* **windowed** (satseg): ``score_windows`` over every 256 px window, one window read at a time;
* **whole-scene baseline**: the whole band read into memory, entropy of every pixel, means
  per window (what a first version would do).

Goal: windowed peak RSS flat in scene size once GDAL's block cache (``satseg.io.gdal``, 64 MB)
is full, i.e. from about 8000² (within 20 % between sizes), and at least the baseline's
throughput on large scenes. Timings on a shared CPU are noisy: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WINDOW = 256


def write_prob(path: Path, size: int) -> None:
    """A size x size uint8 COG-like GeoTIFF written in strips (the bench stays small too)."""
    import rasterio
    from rasterio.windows import Window

    if path.is_file():
        return
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
    }
    xs = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for y0 in range(0, size, 512):
            ys = np.arange(y0, min(size, y0 + 512), dtype=np.float32)[:, None]
            blob = 0.5 + 0.5 * np.sin(xs / 37.0) * np.cos(ys / 53.0)
            dst.write((blob * 255).astype(np.uint8)[None], window=Window(0, y0, size, len(ys)))


def _windowed(folder: Path) -> dict[str, float]:
    from satseg.annotate.uncertainty import score_windows

    t = time.perf_counter()
    n = sum(1 for _ in score_windows(folder, WINDOW))
    return {"windows": n, "seconds": time.perf_counter() - t}


def _whole(folder: Path) -> dict[str, float]:
    import rasterio

    from satseg.annotate.uncertainty import ENTROPY, grid

    t = time.perf_counter()
    with rasterio.open(folder / "prob.tif") as src:
        band = src.read(1)
    h = ENTROPY[band]
    n = 0
    for r, c, hh, ww in grid(band.shape[1], band.shape[0], WINDOW):
        float(h[r : r + hh, c : c + ww].mean())
        n += 1
    return {"windows": n, "seconds": time.perf_counter() - t}


def child(kind: str, folder: Path) -> None:
    out = _windowed(folder) if kind == "windowed" else _whole(folder)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 12000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/satseg-bench-annotate"))
    ap.add_argument("--only", choices=["windowed", "whole-scene"], help="One method only")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    print("| scene | method | windows | seconds | Mpx/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        folder = args.work / f"p{size}"
        folder.mkdir(parents=True, exist_ok=True)
        write_prob(folder / "prob.tif", size)
        for kind in [args.only] if args.only else ["windowed", "whole-scene"]:
            r = subprocess.run(
                [sys.executable, __file__, "--child", kind, str(folder)],
                capture_output=True,
                text=True,
                check=True,
            )
            res = json.loads(r.stdout.strip().splitlines()[-1])
            mpx = size * size / 1e6 / res["seconds"]
            print(
                f"| {size}² | {kind} | {res['windows']} | {res['seconds']:.2f} | {mpx:.0f} "
                f"| {res['peak_rss_mib']:.0f} |"
            )


if __name__ == "__main__":
    main()
