"""Benchmark of scene preprocessing (scene + LabelMe -> 256 px image/mask PNG patches).

    python bench/preprocess.py                       # 10000² and 20000², 3 rounds each
    python bench/preprocess.py --sizes 10000 --rounds 1

Compared in the same run, on the same generated scene (GeoTIFF, 3 bands, uint8, deflate,
512 px tiles) and its LabelMe polygons:

* **seed-style baseline**: ``cv2.imread`` of the whole scene, ``cv2.fillPoly`` of every
  polygon on a whole-scene mask, ``patchify`` both, one ``cv2.imwrite`` per image and mask
  patch (OpenCV's default PNG settings).
* **satseg**: ``satseg.ingest.scene.build_scene``, exactly what ``process_pair`` runs:
  label validation, windowed strip reads, mask burning per strip, nodata/padding check,
  PNGs encoded (Sub filter + ISA-L deflate, ``satseg.preprocess.png``), per-patch drift
  features and band histograms, the strips shared among forked worker processes (one per
  CPU, at most 4) and the results merged.
* **satseg without drift features**: the same patching without ``image_features`` (the
  seed computes none), to show what the features cost; and the same with
  ``png_compression: none`` (stored PNGs, ~2x the disk on this scene).

Imports are loaded before the clock starts (a worker pays them once, not per scene).

Every measurement runs in its own subprocess, so its peak RSS (``ru_maxrss``) and CPU time
(``ru_utime + ru_stime``) are its own, its forked workers' included: CPU time adds theirs,
and peak RSS adds the largest worker's peak once per worker (an upper bound: pages shared
copy-on-write count twice). CPU time per patch stays comparable when other processes
compete for the cores; wall-clock patches/s shows the workers' gain only on an otherwise
idle machine.
Rounds alternate the variants; the median is reported. ``os.sync()`` runs between
measurements and outputs are deleted only between scene sizes, followed by a 35 s pause (see
``quiesce``), so one run's writeback or deletions never land on another's clock. Disk: up to
~9 GB of outputs at 20000². Timings on a shared CPU are noisy:
compare figures of one run only. Goal: satseg >= 3x the baseline's patches/s, peak RSS
< 1 GiB whatever the scene size.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PATCH = 256
VARIANTS = ("baseline", "satseg", "satseg-nofeatures", "satseg-nofeatures-stored")


def cpu_seconds() -> float:
    """This process's CPU time plus that of its finished children (forked patch workers)."""
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def peak_rss_mib(workers: int) -> float:
    """Peak RSS of all processes together, counted high: this process's peak plus the
    largest child's for each forked worker. Pages a child shares copy-on-write with the
    parent count twice."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids * max(workers - 1, 0)) / 1024.0


# --------------------------------------------------------------------------- children
def run_baseline(image: Path, labels: Path, out: Path) -> int:
    """The seed project's way: whole image and mask in memory, patchify, imwrite each."""
    import cv2
    import numpy as np
    from patchify import patchify

    img = cv2.imread(str(image), cv2.IMREAD_COLOR)
    doc = json.loads(labels.read_text())
    mask = np.zeros(img.shape[:2], np.uint8)
    for shape in doc["shapes"]:
        cv2.fillPoly(mask, [np.round(np.array(shape["points"])).astype(np.int32)], 255)
    h, w = (img.shape[0] // PATCH) * PATCH, (img.shape[1] // PATCH) * PATCH
    ip = patchify(img[:h, :w], (PATCH, PATCH, 3), step=PATCH)
    mp = patchify(mask[:h, :w], (PATCH, PATCH), step=PATCH)
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir(parents=True)
    n = 0
    for i in range(ip.shape[0]):
        for j in range(ip.shape[1]):
            cv2.imwrite(str(out / "images" / f"{i}_{j}.png"), ip[i, j, 0])
            cv2.imwrite(str(out / "masks" / f"{i}_{j}.png"), mp[i, j])
            n += 1
    return n


def run_satseg(image: Path, labels: Path, out: Path, features: bool, png: str = "deflate") -> int:
    os.environ["SATSEG_HOME"] = str(out / "home")
    os.environ["SATSEG_LOG_PROGRESS"] = "false"
    from satseg.config import get_settings

    settings = get_settings()
    if features:
        from satseg.ingest.scene import build_scene

        record = {"sha256": "bench", "original": image.name, "annotation": {}, "raw": {}}
        index = build_scene(settings, "bench", "scene", image, labels, "labelme", record=record)
        return len(index["patches"])
    # the same steps as build_scene, with the drift features switched off
    from satseg.ingest.labels import load_labels
    from satseg.ingest.scene import scene_params
    from satseg.io.scene import open_scene
    from satseg.preprocess.masks import PolygonSet
    from satseg.preprocess.patches import PatchParams, patch_scene

    p = scene_params(settings)
    src = open_scene(image, p["bands"], p["scale"])
    polys = PolygonSet.from_geometries(load_labels(labels, src).geometries)
    params = PatchParams(**{**p["patch"], "png": png})
    done = patch_scene(src, polys, out / "scene", "scene", params, features=False)
    src.close()
    return len(done.patches)


def child(variant: str, image: Path, labels: Path, out: Path) -> None:
    # imports are paid once per worker process, not per scene: load them before the clock
    warm = ["cv2", "patchify"]
    if variant != "baseline":
        warm = ["cv2", "rasterio", "shapely", "pyproj", "satseg.ingest.scene", "satseg.config"]
    for module in warm:
        importlib.import_module(module)
    workers = 0
    if variant != "baseline":
        workers = importlib.import_module("satseg.preprocess.patches").default_workers()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    if variant == "baseline":
        n = run_baseline(image, labels, out)
    else:
        png = "none" if variant.endswith("stored") else "deflate"
        n = run_satseg(image, labels, out, features=variant == "satseg", png=png)
    dt = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    print(
        json.dumps(
            {
                "variant": variant,
                "patches": n,
                "seconds": dt,
                "cpu_seconds": cpu,
                "peak_rss_mib": peak_rss_mib(workers),
            }
        )
    )


# --------------------------------------------------------------------------- parent
RECENTLY_DELETED_S = 35


def quiesce(outputs: Path) -> None:
    """Delete earlier outputs, then wait until ext4 no longer treats their inodes as recent.

    ext4 skips inodes freed in the last ~30 s (``dirty_expire_centisecs``) when it allocates
    new ones; creating thousands of files right after deleting thousands is several times
    slower than creating them on a quiet disk, which ingest never does. So runs of one scene
    size keep their outputs (up to ~9 GB at 20000²) and the deletion happens between sizes.
    """
    if outputs.exists():
        shutil.rmtree(outputs)
    os.sync()
    time.sleep(RECENTLY_DELETED_S)  # also after anything else that deleted files (a test run)


def scene(work: Path, size: int) -> tuple[Path, Path]:
    from satseg.synthetic import make_scene

    folder = work / f"scene-{size}"
    image, labels = folder / f"s{size}.tif", folder / f"s{size}.json"
    if not (image.exists() and labels.exists()):
        print(f"generating {size}x{size} scene (once, cached in {folder}) ...", flush=True)
        make_scene(folder, f"s{size}", size, size, seed=0, geojson=False, show_progress=False)
    return image, labels


def measure(variant: str, image: Path, labels: Path, out: Path) -> dict[str, Any]:
    """One run into a fresh folder ``out``; its output stays until the scene size is done."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    r = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(image), str(labels), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    written = sum(p.stat().st_size for p in out.rglob("*.png"))
    os.sync()  # this run's writeback must not land on the next run's clock
    if r.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{r.stderr[-3000:]}")
    res: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    res["png_mib"] = written / 2**20
    res["patches_per_s"] = res["patches"] / res["seconds"]
    res["patches_per_cpu_s"] = res["patches"] / max(res["cpu_seconds"], 1e-9)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "preprocess")
    ap.add_argument("--json", type=Path, help="Also write the results here")
    ap.add_argument(
        "--child", nargs=4, metavar=("VARIANT", "IMAGE", "LABELS", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.child:
        v, image, labels, out = args.child
        child(v, Path(image), Path(labels), Path(out))
        return
    sys.path.insert(0, str(REPO))
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start; {args.rounds} round(s), median shown"
    )
    print(
        "patches/s is wall-clock (uses the worker processes); patches/CPU-s is the work per patch,"
    )
    print("comparable even when other processes share the CPUs")
    summary = []
    for size in args.sizes:
        image, labels = scene(args.work, size)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        outputs = args.work / f"runs-{size}"
        quiesce(outputs)
        for i in range(args.rounds):
            for v in VARIANTS:
                runs[v].append(measure(v, image, labels, outputs / f"{v}-{i}"))
        quiesce(outputs)
        base = statistics.median(r["patches_per_s"] for r in runs["baseline"])
        base_cpu = statistics.median(r["patches_per_cpu_s"] for r in runs["baseline"])
        print(f"\n{size}x{size} scene ({image.stat().st_size / 2**20:.0f} MiB GeoTIFF)")
        print(
            f"{'variant':<19}{'patches':>8}{'wall s':>8}{'patches/s':>10}{'vs base':>9}"
            f"{'CPU s':>8}{'patches/CPU-s':>15}{'vs base':>9}{'peak RSS':>11}{'PNGs':>10}"
        )
        for v in VARIANTS:
            pps = statistics.median(r["patches_per_s"] for r in runs[v])
            ppc = statistics.median(r["patches_per_cpu_s"] for r in runs[v])
            sec = statistics.median(r["seconds"] for r in runs[v])
            cpu = statistics.median(r["cpu_seconds"] for r in runs[v])
            rss = max(r["peak_rss_mib"] for r in runs[v])
            n = runs[v][0]["patches"]
            print(
                f"{v:<19}{n:>8}{sec:>8.1f}{pps:>10.0f}{pps / base:>8.2f}x"
                f"{cpu:>8.1f}{ppc:>15.0f}{ppc / base_cpu:>8.2f}x{rss:>7.0f} MiB"
                f"{runs[v][0]['png_mib']:>6.0f} MiB"
            )
            summary.append(
                {
                    "size": size,
                    "variant": v,
                    "patches": n,
                    "seconds": sec,
                    "cpu_seconds": cpu,
                    "patches_per_s": pps,
                    "speedup": pps / base,
                    "cpu_speedup": ppc / base_cpu,
                    "peak_rss_mib": rss,
                    "png_mib": runs[v][0]["png_mib"],
                    "rounds": runs[v],
                }
            )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
