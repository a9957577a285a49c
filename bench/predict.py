"""Benchmark of whole-scene inference (LinkNet-ResNet18, 256 px tiles) against baselines.

    python bench/predict.py                 # 5000² and 20000² scenes, all measurements
    python bench/predict.py --sizes 5000    # quicker
    python bench/predict.py --only precision
    python bench/predict.py --only dubai    # runtimes on real imagery (needs ../shared)

Every measurement runs in its own subprocess, so its peak RSS (``ru_maxrss``) is its own.
Measured in the same run, on the same CPU:

* **end to end** (``predict_scene``: read, scale, tiles, model, blend, COGs, GeoJSON,
  quicklook, STAC) in Mpx/s of scene, against **model only**: the same predictor on
  batches of the same scene's tiles already in memory, scaled to the number of tiles the
  scene needs at that overlap. Goal: end to end >= 80 % of model only.
* **peak RSS** for 5000² and 20000² (goal: < 1.5 GiB, equal within 20 %).
* **seed-style baseline**: whole scene in memory, normalised at once, non-overlapping
  patches through ``model.predict``, stitched, thresholded, one GeoTIFF write.
* **precision / compilation options** on a labelled scene: throughput on identical tiles,
  and the mask IoU against the ground truth and against fp32, probability differences.
* **runtimes and tile sizes** (``--only runtime``): TensorFlow fp32/bf16 against ONNX
  Runtime fp32/int8 (the artifacts ``satseg.registry.artifacts`` makes at registration,
  exported once here from the same weights) and what ``runtime: auto`` picks, each at
  256/512/1024 px tiles (option ``name@tile[/overlap]``; batch scaled to the same pixels per call),
  end to end and model only in the same run, with the mask IoU against the generator's
  truth and against TensorFlow fp32 at 256/64 (today's path, the baseline).

The model is a LinkNet-ResNet18 trained for a few minutes on generated scenes (cached in
the work folder) so that accuracy differences mean something; ``--weights`` reuses one.
Timings on a shared CPU are noisy: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
TILE, OVERLAP, BATCH = 256, 64, 8
SAMPLE_BATCHES = 8  # model-only batches per round (same scene's tiles); 3 rounds before, 3 after


# --------------------------------------------------------------------------- helpers
def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(weights: str | None) -> Any:
    from satseg.models import build_model

    model = build_model("linknet", "resnet18", (None, None, 3), classes=1)
    if weights:
        model.load_weights(weights)
    return model


def tile_of(option: str) -> tuple[str, int, int, int]:
    """``name@tile[/overlap]`` -> (name, tile, overlap, batch): the batch keeps the pixels per
    call of 256/8 and the overlap is 64 px unless given; without ``@``, the ``predict:``
    defaults (tile, overlap, batch_size) of params.yaml."""
    name, _, spec = option.partition("@")
    if not spec:
        from satseg.params import PredictParams

        d = PredictParams()
        return name, d.tile, d.overlap, d.batch_size
    t, _, o = spec.partition("/")
    tile = int(t)
    return name, tile, int(o) if o else OVERLAP, max(1, BATCH * TILE * TILE // (tile * tile))


def sample_tiles(scene: str, n: int, tile: int = TILE) -> Any:
    """n uint8 tiles of the scene, read and scaled the way predict_scene reads them."""
    import numpy as np

    from satseg.inference.blend import positions
    from satseg.io.scene import open_scene

    tiles = []
    with open_scene(scene) as src:
        xs = positions(src.width, tile, tile - OVERLAP)
        for y in positions(src.height, tile, tile - OVERLAP):
            rgb, _ = src.rows(y, y + tile)
            for x in xs:
                tiles.append(rgb[:, x : x + tile].copy())
                if len(tiles) == n:
                    return np.stack(tiles)
    return np.stack(tiles)


def model_only(
    predictor: Any, tiles: Any, rounds: int = 3, batch: int = BATCH
) -> list[dict[str, float]]:
    """Per round: wall tiles/s and CPU ms per tile (all threads) on in-memory batches.

    CPU time per tile is the robust figure on a shared machine: other processes stretch
    wall time, but not the CPU time this process needs for the work.
    """
    from satseg.io.raster import to_model_input

    batches = [to_model_input(tiles[i : i + batch]) for i in range(0, len(tiles), batch)]
    predictor(batches[0])
    out = []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for b in batches:
            predictor(b)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out.append({"tiles_per_s": len(tiles) / wall, "cpu_ms_per_tile": 1000 * cpu / len(tiles)})
    return out


def med(rounds: list[dict[str, float]], key: str) -> float:
    import statistics

    return float(statistics.median(r[key] for r in rounds))


def make_predictor(model: Any, option: str, artifacts: str | None = None, tile: int = TILE) -> Any:
    """Predictor variants compared in the precision study (all share predict_scene)."""
    import numpy as np
    import tensorflow as tf

    from satseg.inference.engine import Predictor

    if option in ("fp32", "bf16", "int8"):  # int8: satseg's TFLite predictor
        return Predictor(model, tile, option)
    if option in ("ort-fp32", "ort-int8", "auto"):  # satseg.inference.runtime, as tasks run it
        from satseg.inference.runtime import select
        from satseg.registry.artifacts import load_dir

        art = load_dir(artifacts) if artifacts else None
        if option == "auto":
            return select(model, tile, "auto", "auto", art)
        return select(model, tile, "onnxruntime", option.removeprefix("ort-"), art)
    if option == "fp32-predict":  # Keras' own loop, as the seed project called it

        class KerasPredict(Predictor):
            def __call__(self, batch: Any) -> Any:
                return self.model.predict(batch, batch_size=BATCH, verbose=0)[..., -1]

        return KerasPredict(model, TILE, "fp32")
    if option in ("fp32-xla", "bf16-xla"):
        p = Predictor(model, TILE, option.split("-")[0])
        run = p.model

        @tf.function(jit_compile=True)
        def call(x: Any) -> Any:
            return tf.cast(run(x, training=False), tf.float32)[..., -1]

        p._call = call
        return p
    if option == "fp32-grappler-bf16":  # oneDNN graph rewrite of the fp32 model
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
        return Predictor(model, TILE, "fp32")
    if option.startswith("tflite"):
        conv = tf.lite.TFLiteConverter.from_concrete_functions(
            [
                tf.function(lambda x: model(x, training=False)).get_concrete_function(
                    tf.TensorSpec([BATCH, TILE, TILE, 3], tf.float32)
                )
            ],
            model,
        )
        if option == "tflite-int8-dynamic":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        interp = tf.lite.Interpreter(model_content=conv.convert(), num_threads=os.cpu_count())
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

        class Lite(Predictor):
            def __init__(self) -> None:
                self.precision, self.tile, self.source, self.model = option, TILE, model, model

            def __call__(self, batch: Any) -> Any:
                n = len(batch)
                if n < BATCH:
                    batch = np.concatenate(
                        [batch, np.zeros((BATCH - n, *batch.shape[1:]), batch.dtype)]
                    )
                interp.set_tensor(inp, batch)
                interp.invoke()
                return interp.get_tensor(out)[:n, ..., -1]

        return Lite()
    raise ValueError(option)


# --------------------------------------------------------------------------- workers
def w_scene(a: dict[str, Any]) -> dict[str, Any]:
    from satseg.synthetic import make_scene

    t0 = time.perf_counter()
    sc = make_scene(
        a["dir"],
        a["name"],
        a["size"],
        a["size"],
        seed=a["seed"],
        labelme=False,
        geojson=False,
        show_progress=False,
    )
    return {"image": str(sc.image), "seconds": time.perf_counter() - t0}


def w_train(a: dict[str, Any]) -> dict[str, Any]:
    """A few minutes of LinkNet-R18 training on generated scenes (bright roofs vs ground)."""
    import numpy as np
    import tensorflow as tf

    from satseg.io.raster import to_model_input
    from satseg.synthetic import building_polygons, make_scene, rasterize_polygons

    size, n = 2048, TILE
    sc = make_scene(
        a["dir"], "train", size, size, seed=100, labelme=False, geojson=False, show_progress=False
    )
    import rasterio

    with rasterio.open(sc.image) as src:
        img = np.transpose(src.read(), (1, 2, 0))
    mask = rasterize_polygons(building_polygons(size, size, 100), size, size)
    xs = [
        img[y : y + n, x : x + n]
        for y in range(0, size, n // 2)[:-1]
        for x in range(0, size, n // 2)[:-1]
    ]
    ys = [
        mask[y : y + n, x : x + n]
        for y in range(0, size, n // 2)[:-1]
        for x in range(0, size, n // 2)[:-1]
    ]
    x = to_model_input(np.stack(xs))
    y = np.stack(ys)[..., None].astype(np.float32)
    tf.keras.utils.set_random_seed(0)
    model = build(None)
    for layer in model.layers:  # moving statistics must settle within a short run
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.9

    def loss(yt: Any, yp: Any) -> Any:
        bce = tf.keras.losses.binary_crossentropy(yt, yp)
        inter = tf.reduce_sum(yt * yp)
        dice = 1 - (2 * inter + 1) / (tf.reduce_sum(yt) + tf.reduce_sum(yp) + 1)
        return tf.reduce_mean(bce) + dice

    model.compile(tf.keras.optimizers.Adam(1e-3), loss)
    t0 = time.perf_counter()

    def flip(xi: Any, yi: Any) -> Any:
        k = tf.random.uniform([], 0, 4, tf.int32, seed=1)
        return tf.image.rot90(xi, k), tf.image.rot90(yi, k)

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).repeat()
    ds = ds.map(flip).batch(BATCH)
    model.fit(ds, steps_per_epoch=a["steps"], epochs=1, verbose=0)
    model.save_weights(a["weights"])
    return {"weights": a["weights"], "seconds": time.perf_counter() - t0, "patches": len(x)}


def w_export(a: dict[str, Any]) -> dict[str, Any]:
    """The registration step's export (satseg.registry.artifacts.export) of the bench model:
    calibrated on tiles of the training scene, verified on tiles of another scene."""
    from satseg.registry.artifacts import export

    model = build(a["weights"])
    t0 = time.perf_counter()
    calib = sample_tiles(a["calib_scene"], 32)
    sample = sample_tiles(a["sample_scene"], 16)
    meta = export(model, Path(a["out"]), calib, sample, {"tile": TILE})
    return {"seconds": time.perf_counter() - t0, "variants": meta["variants"]}


def w_e2e(a: dict[str, Any]) -> dict[str, Any]:
    from satseg.inference.predict import predict_scene

    model = build(a["weights"])
    option, pipeline = a["option"].removesuffix("-seq"), not a["option"].endswith("-seq")
    name, tile, overlap, batch = tile_of(option)
    predictor = make_predictor(model, name, a.get("artifacts"), tile)
    tiles = sample_tiles(a["scene"], SAMPLE_BATCHES * BATCH * TILE * TILE // (tile * tile), tile)
    before = model_only(predictor, tiles, batch=batch)
    rss_before = rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    s = predict_scene(
        predictor,
        a["scene"],
        a["out"],
        force=True,
        tile=tile,
        overlap=overlap,
        batch_size=batch,
        pipeline=pipeline,
    )
    e2e, e2e_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = rss_mib()
    after = model_only(predictor, tiles, batch=batch)
    return {
        "option": a["option"],
        "runtime": s.get("runtime"),
        "runtime_reason": s.get("runtime_reason"),
        "precision": s["params"]["precision"],
        "e2e_s": e2e,
        "tiles": s["tiles"] - s["tiles_skipped_nodata"],
        "model_s_inside": s["model_seconds"],
        "timings": s.get("timings", {}),
        "model_rounds": before + after,
        "e2e_cpu_s": e2e_cpu,
        "mpx": s["width"] * s["height"] / 1e6,
        "rss_mib": rss,
        "rss_before_e2e_mib": rss_before,
        "outputs": s["outputs"],
        "polygons": s["polygons"],
    }


def w_seed(a: dict[str, Any]) -> dict[str, Any]:
    """Seed-style: whole scene in RAM, normalised at once, no overlap, model.predict, 1 write."""
    import numpy as np
    import rasterio

    from satseg.io.raster import make_scaler, to_model_input

    model = build(a["weights"])
    model.predict(np.zeros((1, TILE, TILE, 3), np.float32), verbose=0)
    t0, c0 = time.perf_counter(), time.process_time()
    with rasterio.open(a["scene"]) as src:
        rgb = make_scaler(src).apply(src.read())
        profile = src.profile
    h, w = rgb.shape[:2]
    ph, pw = -h % TILE, -w % TILE
    rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)))
    gh, gw = rgb.shape[0] // TILE, rgb.shape[1] // TILE
    patches = rgb.reshape(gh, TILE, gw, TILE, 3).swapaxes(1, 2).reshape(-1, TILE, TILE, 3)
    x = to_model_input(patches)
    pred = model.predict(x, batch_size=BATCH, verbose=0)[..., 0]
    full = pred.reshape(gh, gw, TILE, TILE).swapaxes(1, 2).reshape(gh * TILE, gw * TILE)[:h, :w]
    mask = (full >= 0.5).astype(np.uint8)
    profile.update(count=1, dtype="uint8", compress="deflate", nodata=None)
    with rasterio.open(a["out"], "w", **profile) as dst:
        dst.write(mask, 1)
    e2e, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "e2e_s": e2e,
        "e2e_cpu_s": cpu,
        "tiles": int(gh * gw),
        "mpx": h * w / 1e6,
        "rss_mib": rss_mib(),
    }


def w_speed(a: dict[str, Any]) -> dict[str, Any]:
    """Model-only tiles/s of one option (rounds over the same batches, after a warm-up)."""
    model = build(a["weights"])
    tiles = sample_tiles(a["scene"], a["batches"] * BATCH)
    return {"rounds": model_only(make_predictor(model, a["option"]), tiles, a["rounds"])}


def w_accuracy(a: dict[str, Any]) -> dict[str, Any]:
    """Masks/probabilities of one option vs fp32 and vs the generator's ground truth."""
    import numpy as np
    import rasterio

    from satseg.synthetic import building_polygons, rasterize_polygons

    def read(p: str) -> Any:
        with rasterio.open(p) as d:
            return d.read(1)

    n = a["size"]
    truth = rasterize_polygons(building_polygons(n, n, a["seed"]), n, n).astype(bool)
    ref_p, ref_m = read(a["ref"]["probability"]).astype(int), read(a["ref"]["mask"]) == 1
    out = {}
    for opt, o in a["runs"].items():
        p, m = read(o["probability"]).astype(int), read(o["mask"]) == 1
        out[opt] = {
            "iou_truth": float((m & truth).sum() / max(1, (m | truth).sum())),
            "iou_vs_fp32": float((m & ref_m).sum() / max(1, (m | ref_m).sum())),
            "prob_absdiff_mean_u8": float(np.abs(p - ref_p).mean()),
            "prob_absdiff_p999_u8": float(np.percentile(np.abs(p - ref_p), 99.9)),
            "prob_absdiff_max_u8": int(np.abs(p - ref_p).max()),
        }
    return out


WORKERS = {
    "speed": w_speed,
    "scene": w_scene,
    "train": w_train,
    "e2e": w_e2e,
    "seed": w_seed,
    "accuracy": w_accuracy,
    "export": w_export,
}


def run_worker(kind: str, args: dict[str, Any], timeout: int = 3600) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "_worker", kind, json.dumps(args)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if r.returncode != 0:
        tail = r.stderr.strip().splitlines()[-15:]
        return {"error": f"{kind} failed (rc {r.returncode}): " + "\n".join(tail)}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t0
    return res


def _tps(r: dict[str, Any]) -> float:
    """Median model-only tiles/s of the rounds before and after the end-to-end run."""
    return med(r["model_rounds"], "tiles_per_s")


# --------------------------------------------------------------------------- main
def mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 2**20
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "predict")
    ap.add_argument("--weights", help="LinkNet-R18 weights (.h5); default: train (cached)")
    ap.add_argument("--train-steps", type=int, default=250)
    ap.add_argument("--e2e-options", nargs="+", default=["fp32", "bf16", "int8"])
    ap.add_argument(
        "--precision-options",
        nargs="+",
        default=[
            "fp32",
            "fp32-predict",
            "fp32-xla",
            "bf16",
            "bf16-xla",
            "int8",
            "fp32-grappler-bf16",
            "tflite-fp32",
            "tflite-int8-dynamic",
        ],
    )
    ap.add_argument("--only", choices=["e2e", "precision", "runtime", "dubai"], help="run one part")
    ap.add_argument(
        "--dubai-train-min",
        type=float,
        default=5.0,
        help="--only dubai: training budget of the Dubai model (minutes; reused once made)",
    )
    ap.add_argument(
        "--dubai-runs",
        nargs="+",
        default=DUBAI_RUNS,
        help="--only dubai: runtime:precision[@tile/overlap] per run; the first is the reference",
    )
    ap.add_argument(
        "--runtime-options",
        nargs="+",
        default=[
            "fp32@256",  # today's path: the baseline
            "bf16@256",
            "ort-fp32@256",
            "ort-int8@256",
            "ort-int8@512",
            "bf16@512",
            "ort-int8@1024",
            "auto",  # the product's defaults (tile, runtime, precision)
        ],
    )
    ap.add_argument(
        "--seed-max", type=int, default=20000, help="largest size for the seed baseline"
    )
    args = ap.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cpu": _cpu(), "tile": TILE, "overlap": OVERLAP, "batch": BATCH}

    weights = args.weights or str(work / f"linknet_r18_{args.train_steps}.weights.h5")
    if not Path(weights).exists():
        print(
            f"training LinkNet-R18 for {args.train_steps} steps (cached in {weights}) ...",
            flush=True,
        )
        results["train"] = run_worker(
            "train", {"dir": str(work / "train"), "steps": args.train_steps, "weights": weights}
        )
        print(results["train"], flush=True)

    if args.only in (None, "precision"):
        results["precision"] = precision_study(work, weights, args.precision_options)
    if args.only in (None, "runtime"):
        results["runtime"] = {
            str(size): runtime_study(work, weights, size, args.runtime_options)
            for size in args.sizes
        }
    if args.only == "dubai":
        results["dubai"] = dubai_study(work, args.dubai_train_min, args.dubai_runs)
    if args.only in (None, "e2e"):
        results["e2e"] = {}
        for size in args.sizes:
            results["e2e"][size] = e2e_study(
                work, weights, size, args.e2e_options, size <= args.seed_max
            )
    out = work / "results.json"  # parts run separately (--only) accumulate in one file
    previous = json.loads(out.read_text()) if out.exists() else {}
    if "runtime" in previous and "runtime" in results:
        results["runtime"] = {**previous["runtime"], **results["runtime"]}
    if "e2e" in previous and "e2e" in results:
        results["e2e"] = {**previous["e2e"], **{str(k): v for k, v in results["e2e"].items()}}
    out.write_text(json.dumps({**previous, **results}, indent=2, default=str))
    print(f"\nall figures: {out}")


def _cpu() -> dict[str, Any]:
    from satseg.inference.engine import cpu_has_bf16

    return {
        "cores": os.cpu_count(),
        "avx512_bf16": cpu_has_bf16(),
        "load_avg_at_start": os.getloadavg(),
    }


def scene(work: Path, size: int, seed: int) -> str:
    img = work / "scenes" / f"scene_{size}_s{seed}.tif"
    if not img.exists():
        print(f"generating {size}x{size} scene ...", flush=True)
        r = run_worker(
            "scene", {"dir": str(img.parent), "name": img.stem, "size": size, "seed": seed}
        )
        print(f"  {r.get('seconds', 0):.0f} s", flush=True)
    return str(img)


def e2e_study(
    work: Path, weights: str, size: int, options: list[str], seed_base: bool
) -> dict[str, Any]:
    img = scene(work, size, seed=11)
    res: dict[str, Any] = {}
    for opt in options:
        print(f"{size}² end to end, {opt} ...", flush=True)
        r = run_worker(
            "e2e",
            {
                "weights": weights,
                "scene": img,
                "option": opt,
                "out": str(work / "pred" / f"{size}_{opt}"),
            },
        )
        if "error" not in r:
            model_s = r["tiles"] / _tps(r)
            r["model_only_mpx_s"] = r["mpx"] / model_s
            r["e2e_mpx_s"] = r["mpx"] / r["e2e_s"]
            r["e2e_vs_model"] = model_s / r["e2e_s"]
            # the same ratio in CPU time (robust to other processes on the machine)
            model_cpu = r["tiles"] * med(r["model_rounds"], "cpu_ms_per_tile") / 1000
            r["e2e_vs_model_cpu"] = model_cpu / r["e2e_cpu_s"]
        res[opt] = r
        _print_e2e(size, opt, r)
    if seed_base:
        # ~44 B/px measured at 5000² (raw + scaled + padded uint8, float32 input, float32
        # prediction, stitched copy, mask) on top of the ~1 GiB of TF and the model
        need = 1.0 + size * size * 44 / 2**30
        if mem_available_gib() > 1.2 * need + 4:
            print(f"{size}² seed-style baseline ...", flush=True)
            r = run_worker(
                "seed",
                {"weights": weights, "scene": img, "out": str(work / "pred" / f"{size}_seed.tif")},
            )
            if "error" not in r:
                r["e2e_mpx_s"] = r["mpx"] / r["e2e_s"]
            res["seed_baseline"] = r
            _print_e2e(size, "seed", r)
        else:
            res["seed_baseline"] = {
                "skipped": f"needs ~{need:.1f} GiB, {mem_available_gib():.1f} available"
            }
            print(res["seed_baseline"])
    return res


def _print_e2e(size: int, opt: str, r: dict[str, Any]) -> None:
    if "error" in r:
        print(f"  ERROR {r['error']}", flush=True)
        return
    line = f"  {size}² {opt:>6}: end to end {r['e2e_s']:.1f} s = {r['e2e_mpx_s']:.2f} Mpx/s"
    if "model_only_mpx_s" in r:
        line += (
            f"; model only {r['model_only_mpx_s']:.2f} Mpx/s ({_tps(r):.1f} tiles/s)"
            f" -> e2e/model {100 * r['e2e_vs_model']:.0f} % wall,"
            f" {100 * r['e2e_vs_model_cpu']:.0f} % CPU time"
        )
    if "model_s_inside" in r:
        line += f"; model time inside e2e {r['model_s_inside']:.1f} s"
    line += f"; CPU {r['e2e_cpu_s']:.1f} s = {r['mpx'] / r['e2e_cpu_s']:.2f} Mpx per CPU-s"
    line += f"; peak RSS {r['rss_mib']:.0f} MiB"
    if "rss_before_e2e_mib" in r:
        line += f" ({r['rss_before_e2e_mib']:.0f} before the scene)"
    if r.get("timings"):
        line += "\n    where the time went (s): " + ", ".join(
            f"{k.removesuffix('_s')} {v:.2f}" for k, v in r["timings"].items()
        )
    print(line, flush=True)


def runtime_study(work: Path, weights: str, size: int, options: list[str]) -> dict[str, Any]:
    """Runtimes x tile sizes on one generated scene: speed (e2e, model only), IoU, RSS."""
    art = work / "artifacts"
    if not (art / "inference.json").exists():
        print("exporting ONNX fp32 + int8 (the registration step) ...", flush=True)
        r = run_worker(
            "export",
            {
                "weights": weights,
                "calib_scene": scene(work, 2048, seed=100),
                "sample_scene": scene(work, 2048, seed=7),
                "out": str(art),
            },
        )
        print(json.dumps(r, indent=1, default=str), flush=True)
    img = scene(work, size, seed=11)
    res: dict[str, Any] = {}
    keys: list[str] = []  # a repeated option is a second run: "auto", "auto#2", ...
    for opt in options:
        key = opt if opt not in keys else f"{opt}#{options[: len(keys)].count(opt) + 1}"
        keys.append(key)
        print(f"{size}² {key} ...", flush=True)
        out = str(
            work / "rt" / f"{size}_{key.replace('@', '_').replace('#', '_').replace('/', 'o')}"
        )
        r = run_worker(
            "e2e",
            {"weights": weights, "scene": img, "option": opt, "out": out, "artifacts": str(art)},
        )
        if "error" not in r:
            model_s = r["tiles"] / _tps(r)
            r["model_only_mpx_s"] = r["mpx"] / model_s
            r["e2e_mpx_s"] = r["mpx"] / r["e2e_s"]
            r["e2e_vs_model"] = model_s / r["e2e_s"]
            model_cpu = r["tiles"] * med(r["model_rounds"], "cpu_ms_per_tile") / 1000
            r["e2e_vs_model_cpu"] = model_cpu / r["e2e_cpu_s"]
        res[key] = r
        _print_e2e(size, key, r)
    ok = {k: v["outputs"] for k, v in res.items() if "error" not in v}
    base = keys[0]
    if base in ok and len(ok) > 1:
        acc = run_worker("accuracy", {"size": size, "seed": 11, "ref": ok[base], "runs": ok})
        for k, v in acc.items():
            if isinstance(v, dict):
                res[k]["accuracy"] = v
    _print_runtime_table(size, keys, res)
    return res


DUBAI = REPO.parent / "shared" / "data" / "real" / "dubai_buildings"
DUBAI_RUNS = [  # runtime:precision[@tile/overlap]; the first is the reference
    "tensorflow:fp32@256/64",  # the path before issue 18
    "tensorflow:fp32",  # the predict: defaults of params.yaml from here on
    "tensorflow:bf16",
    "onnxruntime:fp32",
    "onnxruntime:int8",
    "auto:auto",
]


def dubai_run(spec: str) -> tuple[str, str, dict[str, int]]:
    """``runtime:precision[@tile/overlap]`` -> (runtime, precision, predict_scene kwargs)."""
    rp, _, geom = spec.partition("@")
    runtime, _, precision = rp.partition(":")
    if not geom:
        return runtime, precision or "auto", {}
    t, _, o = geom.partition("/")
    kw = {"tile": int(t), "overlap": int(o) if o else OVERLAP}
    return runtime, precision or "auto", kw


def dubai_study(work: Path, train_min: float, runs: list[str]) -> dict[str, Any]:
    """Runtimes on real imagery: a model trained by the product on Dubai tiles 1-4
    (``satseg ingest`` + ``satseg train``, ONNX artifacts made and verified at registration),
    then ``predict_scene`` on the 18 images of tiles 5-6 with each run of ``runs``
    (``DUBAI_RUNS``: runtime, precision, tile, overlap); building IoU against the hand-made
    truth and against the first run's masks."""
    if not DUBAI.is_dir():
        print(f"{DUBAI} not found: Dubai study skipped", flush=True)
        return {"skipped": str(DUBAI)}
    home = work / "dubai"
    env = {**os.environ, "SATSEG_HOME": str(home), "SATSEG_ONNX_ARTIFACTS": "true"}
    if not (home / "trained").exists():
        shutil.rmtree(home, ignore_errors=True)
        inbox = home / "inbox" / "dubai"
        inbox.mkdir(parents=True)
        for f in sorted((DUBAI / "labelme").iterdir()):
            if f.name.startswith(("tile1", "tile2", "tile3", "tile4")):
                shutil.copy(f, inbox / f.name)
        params = home / "params.yaml"
        params.write_text(f"train:\n  time_budget_min: {train_min}\n")
        env["SATSEG_PARAMS_FILE"] = str(params)
        cli = [sys.executable, "-m", "satseg"]
        t0 = time.perf_counter()
        for cmd in (["ingest"], ["ingest"], ["train", "--dataset", "dubai"]):
            print(f"satseg {' '.join(cmd)} ...", flush=True)
            subprocess.run([*cli, *cmd], env=env, check=True, capture_output=True)
        (home / "trained").write_text(f"{time.perf_counter() - t0:.0f} s\n")
    r = run_worker("dubai", {"home": str(home), "out": str(work / "dubai_out"), "runs": runs})
    if "error" in r:
        print(r["error"], flush=True)
        return r
    base = r["runs"][runs[0]]
    print(
        f"Dubai tiles 5-6, {r['images']} images, model v{r['version']}; artifacts {r['artifacts']}"
    )
    for name, v in r["runs"].items():
        print(
            f"  {name:26s} building IoU {v['iou']:.4f} (vs {runs[0]} {v['iou'] - base['iou']:+.4f}),"
            f" mask IoU vs it {v['iou_vs_ref']:.4f}, IoU vs untiled at seams"
            f" {v['seam_iou_untiled']:.4f} / elsewhere {v['rest_iou_untiled']:.4f},"
            f" runtime used: {v['runtime']} "
            f"{v['precision']} {v['tile']}/{v['overlap']}, {v['seconds']:.1f} s",
            flush=True,
        )
    return r


def w_dubai(a: dict[str, Any]) -> dict[str, Any]:
    import cv2
    import rasterio

    os.environ["SATSEG_HOME"] = a["home"]
    from satseg.config import get_settings
    from satseg.inference.jobs import load_registered_model
    from satseg.inference.predict import predict_scene

    settings = get_settings()
    model, info = load_registered_model(settings)
    images = sorted(
        p for p in (DUBAI / "labelme").glob("*.jpg") if p.name.startswith(("tile5", "tile6"))
    )
    runs: dict[str, Any] = {}
    masks: dict[str, list[Any]] = {}
    seams: dict[str, list[int]] = {}
    whole = {img.stem: untiled(model, img) for img in images}
    for name in a["runs"]:
        runtime, precision, geom = dubai_run(name)
        inter = union = 0
        masks[name] = []
        t0 = time.perf_counter()
        used: dict[str, Any] = {}
        out = Path(a["out"]) / name.replace(":", "_").replace("@", "_").replace("/", "o")
        for img in images:
            s = predict_scene(
                model,
                img,
                out / img.stem,
                model_info=info,
                runtime=runtime,
                precision=precision,
                force=True,
                **geom,
            )
            used = {
                "runtime": s["runtime"],
                "precision": s["params"]["precision"],
                "tile": s["params"]["tile"],
                "overlap": s["params"]["overlap"],
            }
            with rasterio.open(s["outputs"]["mask"]) as d:
                pred = d.read(1) == 1
            truth = cv2.imread(str(DUBAI / "truth" / f"{img.stem}_buildings.png"), 0) > 127
            inter += int((pred & truth).sum())
            union += int((pred | truth).sum())
            masks[name].append(pred)
        seconds = time.perf_counter() - t0
        for img in images:  # agreement with the untiled prediction, at seams and elsewhere
            with rasterio.open(out / img.stem / "prob.tif") as d:
                prob = d.read(1).astype("float32") / 255.0
            counts = seam_counts(prob, whole[img.stem], used["tile"], used["overlap"])
            seams[name] = [x + y for x, y in zip(seams.get(name, [0] * 4), counts, strict=True)]
        ref = masks[a["runs"][0]]
        both = sum(int((m & r).sum()) for m, r in zip(masks[name], ref, strict=True))
        either = sum(int((m | r).sum()) for m, r in zip(masks[name], ref, strict=True))
        runs[name] = {
            "iou": inter / max(1, union),
            "iou_vs_ref": both / max(1, either),
            "seconds": seconds,
            # IoU of the mask at 0.5 with the untiled one, within 16 px of a tile edge and
            # elsewhere (64 px scene border left out): a seam shows as a lower first figure
            "seam_iou_untiled": seams[name][0] / max(1, seams[name][1]),
            "rest_iou_untiled": seams[name][2] / max(1, seams[name][3]),
            **used,
        }
    art = info.get("artifacts")
    verified = (
        {k: v.get("reason") for k, v in art.meta.get("variants", {}).items()}
        if art is not None
        else info["artifacts_reason"]
    )
    return {"version": info["version"], "images": len(images), "artifacts": verified, "runs": runs}


WORKERS["dubai"] = w_dubai


def untiled(model: Any, img: Path) -> Any:
    """The Keras model (fp32) on the whole image at once, zero-padded to a multiple of 32:
    the prediction without tile seams, as the reference of ``seam_counts``."""
    import numpy as np

    from satseg.io.raster import to_model_input
    from satseg.io.scene import open_scene

    with open_scene(img) as src:
        rgb, _ = src.rows(0, src.height)
    h, w = rgb.shape[:2]
    x = np.pad(rgb, ((0, -h % 32), (0, -w % 32), (0, 0)))
    p = model(to_model_input(x[None]), training=False).numpy()[0, ..., -1]
    return p[:h, :w]


def seam_counts(
    prob: Any, ref: Any, tile: int, overlap: int, near: int = 16
) -> tuple[int, int, int, int]:
    """Intersection and union of ``prob >= 0.5`` with ``ref >= 0.5`` on the pixels within
    ``near`` px of an interior tile edge of the grid (tile, overlap), then on the others,
    both more than 64 px inside the scene."""
    import numpy as np

    from satseg.inference.blend import positions

    h, w = ref.shape

    def zone(n: int) -> Any:
        z = np.zeros(n, bool)
        for x in positions(n, tile, tile - overlap):
            for edge in (x, x + tile):
                if 0 < edge < n:
                    z[max(0, edge - near) : edge + near] = True
        return z

    at_seam = zone(h)[:, None] | zone(w)[None, :]
    inside = np.zeros((h, w), bool)
    inside[64 : h - 64, 64 : w - 64] = True
    a, b = prob >= 0.5, ref >= 0.5
    out: list[int] = []
    for where in (at_seam & inside, ~at_seam & inside):
        out += [int((a & b & where).sum()), int(((a | b) & where).sum())]
    return out[0], out[1], out[2], out[3]


def _print_runtime_table(size: int, options: list[str], res: dict[str, Any]) -> None:
    base = res.get(options[0], {})
    print(
        f"\n{size}²: | option | runtime, precision | e2e Mpx/s | vs {options[0]} | model only"
        " Mpx/s | e2e / model | CPU-s | peak RSS MiB | IoU vs truth | IoU vs baseline |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k in options:
        r = res.get(k, {})
        if "error" in r or not r:
            print(f"| {k} | failed: {str(r.get('error'))[:80]} |")
            continue
        a = r.get("accuracy", {})
        print(
            f"| {k} | {r.get('runtime')} {r.get('precision')} | {r['e2e_mpx_s']:.2f} | "
            f"{r['e2e_mpx_s'] / base.get('e2e_mpx_s', float('nan')):.2f}x | "
            f"{r['model_only_mpx_s']:.2f} | {100 * r['e2e_vs_model']:.0f} % | "
            f"{r['e2e_cpu_s']:.0f} | {r['rss_mib']:.0f} | "
            f"{a.get('iou_truth', float('nan')):.4f} | {a.get('iou_vs_fp32', float('nan')):.4f} |"
        )


def precision_study(
    work: Path, weights: str, options: list[str], rounds: int = 3
) -> dict[str, Any]:
    """Accuracy (end-to-end outputs vs fp32 and truth) and model-only speed of each option."""
    size, seed = 2048, 7
    img = scene(work, size, seed)
    runs: dict[str, Any] = {}
    for opt in options:
        out = work / "prec" / opt
        key = out / "bench_key.json"  # outputs are deterministic: reuse them for the same weights
        if key.exists() and json.loads(key.read_text())["weights"] == weights:
            runs[opt] = json.loads(key.read_text())["run"]
            continue
        print(f"precision option {opt}: end-to-end outputs ...", flush=True)
        runs[opt] = run_worker(
            "e2e", {"weights": weights, "scene": img, "option": opt, "out": str(out)}
        )
        if "error" in runs[opt]:
            print(f"  ERROR {runs[opt]['error']}", flush=True)
        else:
            key.write_text(json.dumps({"weights": weights, "run": runs[opt]}))
    ok = {k: v["outputs"] for k, v in runs.items() if "error" not in v}
    if "fp32" in ok:
        acc = run_worker("accuracy", {"size": size, "seed": seed, "ref": ok["fp32"], "runs": ok})
        for k, v in acc.items():
            if isinstance(v, dict):
                runs[k]["accuracy"] = v
    # Speed: one subprocess per option and round, options alternating, so that the load
    # of other processes on the shared CPU hits every option alike (some options, like the
    # grappler rewrite, are process-wide switches and cannot share a process).
    rates: dict[str, list[dict[str, float]]] = {o: [] for o in ok}
    for r in range(rounds):
        print(f"model-only speed, round {r + 1}/{rounds} ...", flush=True)
        for opt in ok:
            res = run_worker(
                "speed",
                {"weights": weights, "scene": img, "option": opt, "batches": 4, "rounds": 3},
            )
            rates[opt] += res.get("rounds", [])
    speed = {
        o: {
            "tiles_per_s": med(v, "tiles_per_s"),
            "best_tiles_per_s": max(x["tiles_per_s"] for x in v),
            "cpu_ms_per_tile": med(v, "cpu_ms_per_tile"),
            "rounds": v,
        }
        for o, v in rates.items()
        if v
    }
    runs["speed"] = speed
    base = speed.get("fp32", {}).get("cpu_ms_per_tile")
    print(
        "\n| option | CPU ms/tile | speedup (CPU) | tiles/s median / best | mask IoU vs truth"
        " | mask IoU vs fp32 | mean / max abs prob diff (1/255) |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in options:
        v = runs[k]
        if "error" in v or k not in speed:
            print(f"| {k} | failed: {v.get('error', 'no speed figure')[:80]} |")
            continue
        sp = speed[k]
        a = v.get("accuracy", {})
        print(
            f"| {k} | {sp['cpu_ms_per_tile']:.1f} | {base / sp['cpu_ms_per_tile']:.2f}x | "
            f"{sp['tiles_per_s']:.1f} / {sp['best_tiles_per_s']:.1f} | "
            f"{a.get('iou_truth', float('nan')):.4f} | {a.get('iou_vs_fp32', float('nan')):.4f} | "
            f"{a.get('prob_absdiff_mean_u8', float('nan')):.2f} / {a.get('prob_absdiff_max_u8', -1)} |"
        )
    return runs


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        sys.path.insert(0, str(REPO))
        print(json.dumps(WORKERS[sys.argv[2]](json.loads(sys.argv[3])), default=str))
    else:
        main()
