"""Quality benchmark: the default retrain on Dubai tiles 1-4, scored on unseen tiles 5-6.

    python bench/quality.py                         # main's defaults vs today's, nightly budget
    python bench/quality.py --budget-min 6          # short comparison, same seed
    python bench/quality.py --variants main default nob:border_weight=0
    python bench/quality.py --epochs 3 --budget-min 0   # fixed epochs instead of minutes
    SATSEG_BENCH_DUBAI=/tmp/copy python bench/quality.py  # a changed copy of the dataset
    python bench/quality.py --keep /tmp/q               # keep models + predictions to look at
    python bench/quality.py --split 1256:34             # another spatial split (train:test)
    python bench/quality.py --predict-variants d4:tta=d4   # each model also scored with TTA

Tiles 1-4 of ``../shared/data/real/dubai_buildings`` go through the product's own ingest
(``satseg.ingest.pipeline.run_once``, params.yaml defaults: 256 px patches, scene split with
val inside tiles 1-4); each variant is then trained by ``satseg.training.fit.fit`` with the
``train:`` defaults plus the variant's overrides, and scored on the 18 images of tiles 5-6
(never seen, never used to pick a checkpoint) against ``truth/*_buildings.png``:

* each image predicted by the product (``satseg.inference.predict.predict_scene`` with
  params.yaml's ``predict:`` defaults: 512 px tiles, 64 px overlap, sin⁴ blend, opening,
  ``precision: auto``) with the post-processing the retrain stores with the model (threshold
  and minimum area tuned on val by ``satseg.training.evaluate.tune``);
* ``shipped``: its mask COG, what a user gets; ``raw``: its probability COG at 0.5 without
  opening or area filter (the model alone, the figure of earlier stops);
* for both, pooled pixel IoU / Dice / precision / recall, object F1 (IoU >= 0.5 matches) and
  boundary IoU over all 18 images (``satseg.metrics.Scorer``), and the mean per-image IoU
  (images without buildings and without predicted buildings count as 1.0);
* the val scores at the tuned values, epochs run, wall and CPU seconds.

``main`` is the training defaults of main before issue 16, expressed as overrides of today's
fields, so both run in one session on one machine. Each variant runs in its own subprocess,
one after another; on a shared CPU compare figures of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# another copy of the dataset (same layout: labelme/, truth/), e.g. photometrically changed
REAL = Path(
    os.environ.get(
        "SATSEG_BENCH_DUBAI", REPO.parent / "shared" / "data" / "real" / "dubai_buildings"
    )
)
# train:test tiles, e.g. "1235:4" (children inherit it); the default is the benchmark's split
SPLIT = os.environ.get("SATSEG_BENCH_SPLIT", "1234:56")


def split_tiles(split: str = SPLIT) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``"1234:56"`` -> (("tile1", .., "tile4"), ("tile5", "tile6")); the two must not overlap."""
    train, _, test = split.partition(":")
    if not train or not test or set(train) & set(test):
        raise SystemExit(f"--split {split!r}: want disjoint train:test tile digits, e.g. 1234:56")
    return tuple(f"tile{t}" for t in train), tuple(f"tile{t}" for t in test)


TRAIN_TILES, TEST_TILES = split_tiles()

# main's training defaults before issue 16, as overrides of the fields added since
MAIN: dict[str, Any] = {
    "sampler": "patches",
    "scale_jitter": 0.0,
    "color_jitter": 0.0,
    "blur_prob": 0.0,
    "border_weight": 0.0,
    "schedule": "plateau",
    "weight_decay": 0.0,
    "precision": "fp32",
}


def _usage() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``main`` | ``default`` | ``name:key=val,key=val`` (values as YAML scalars)."""
    import yaml

    name, _, rest = spec.partition(":")
    base = dict(MAIN) if name == "main" else {}
    for item in filter(None, rest.split(",")):
        key, _, val = item.partition("=")
        if key.startswith("main+"):  # main's defaults plus this change
            base.update(MAIN)
            key = key.removeprefix("main+")
        base[key] = yaml.safe_load(val)
    return name, base


# --------------------------------------------------------------------------- data
def ingest(home: Path) -> Path:
    """Tiles 1-4 through the product's ingest into ``home``; returns the dataset dir."""
    os.environ["SATSEG_HOME"] = str(home)
    from satseg.config import get_settings
    from satseg.ingest.pipeline import run_once

    settings = get_settings()
    settings.ensure_dirs()
    inbox = settings.inbox / "dubai"
    inbox.mkdir(parents=True, exist_ok=True)
    for p in sorted((REAL / "labelme").iterdir()):
        if p.name.startswith(TRAIN_TILES):
            shutil.copy(p, inbox / p.name)
    for _ in range(2):  # the inbox takes a file once its size held still between two scans
        run_once(settings, poll_interval=0)
    return settings.processed / "dubai"


def test_images() -> list[tuple[str, Path, Path]]:
    out = []
    for img in sorted((REAL / "labelme").glob("*.jpg")):
        if img.name.startswith(TEST_TILES):
            out.append((img.stem, img, REAL / "truth" / f"{img.stem}_buildings.png"))
    return out


# --------------------------------------------------------------------------- scoring
def _read_band(path: str) -> Any:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1)


def score_tiles(
    model: Any, postprocess: dict[str, Any], out_dir: Path, over: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Tiles 5-6 through ``satseg.inference.predict.predict_scene`` with params.yaml's
    ``predict:`` defaults (plus ``over``, e.g. ``{"tta": "d4"}``) and the model's tuned
    ``postprocess``, as ``satseg predict`` runs a registered model: ``shipped`` scores its
    mask COG, ``raw`` its probability COG at 0.5 with no opening or area filter (the model
    alone)."""
    import cv2
    import numpy as np

    from satseg.config import get_settings
    from satseg.inference.params import PredictParams
    from satseg.inference.predict import predict_scene
    from satseg.metrics import Scorer, Truth, pixel_counts, pixel_scores

    params = PredictParams.from_params(get_settings().params(), **(over or {}))
    info = {"name": "bench", "version": "0", "postprocess": postprocess}
    scorers = {"shipped": Scorer(), "raw": Scorer()}
    per_image: dict[str, list[float]] = {k: [] for k in scorers}
    used: dict[str, Any] = {}
    for stem, img_path, truth_path in test_images():
        truth = Truth.of(np.asarray(cv2.imread(str(truth_path), cv2.IMREAD_GRAYSCALE)) > 127)
        s = predict_scene(model, img_path, out_dir / stem, params=params, model_info=info)
        used = {**s["params"], "postprocess_from": s["postprocess_from"]}
        preds = {
            "shipped": _read_band(s["outputs"]["mask"]) == 1,
            "raw": _read_band(s["outputs"]["probability"]) > 127,
        }
        for k, pred in preds.items():
            scorers[k].update(truth, pred)
            per_image[k].append(pixel_scores(*pixel_counts(truth.mask, pred))["iou"])
    out: dict[str, Any] = {"images": len(per_image["raw"]), "predict": used}
    for k, sc in scorers.items():  # pooled over the 18 images
        out[k] = {**sc.result(), "mean_image_iou": float(np.mean(per_image[k]))}
    return out


# --------------------------------------------------------------------------- children
def child_train(
    data: str,
    overrides: dict[str, Any],
    budget_min: float,
    epochs: int,
    keep: str | None = None,
    predict_variants: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    from satseg.config import get_settings
    from satseg.training.config import TrainConfig
    from satseg.training.evaluate import tune
    from satseg.training.fit import fit

    opts = dict(overrides)
    opts["time_budget_min"] = budget_min if budget_min > 0 else None
    if epochs:
        opts["epochs"] = epochs
    cfg = TrainConfig.from_settings(get_settings(), **opts)
    cpu0, t = _usage(), time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        model, history = fit(data, cfg, Path(work))
    wall, cpu = time.perf_counter() - t, _usage() - cpu0
    # the post-processing retrain stores with the model: tuned on val, as _evaluate_one does
    tuned = tune(
        model,
        data,
        "val",
        metric=cfg.promotion_metric,
        opening_px=get_settings().params().predict.opening_px,
    )
    postprocess = {k: tuned[k] for k in ("threshold", "min_area_px", "opening_px")}
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_pred:
        pred_dir = Path(keep) / "predictions" if keep else Path(tmp_pred)
        unseen = score_tiles(model, postprocess, pred_dir)
        # the same model scored again with other predict: options (TTA, tile, overlap)
        unseen_with = {}
        for pname, pover in (predict_variants or {}).items():
            t3 = time.perf_counter()
            unseen_with[pname] = score_tiles(model, postprocess, pred_dir / pname, pover)
            unseen_with[pname]["score_s"] = time.perf_counter() - t3
    if keep:  # the trained model beside its predictions, to look at or score again
        model.save(Path(keep) / "model.keras")
    n_epochs = len(history["loss"])
    return {
        "config": {k: v for k, v in cfg.to_dict().items() if k != "encoder_weights"},
        "epochs": n_epochs,
        "best_epoch": int(max(range(n_epochs), key=lambda i: history["val_iou"][i])) + 1,
        "train_wall_s": wall,
        "train_cpu_s": cpu,
        "patches_seen": history.get("patches_seen", [0])[-1] if "patches_seen" in history else None,
        "val": tuned["metrics"],
        "postprocess": postprocess,
        "unseen": unseen,
        "unseen_with": unseen_with,
        "score_s": time.perf_counter() - t2,
        "history_val_iou": history["val_iou"],
    }


def _spawn(kw: dict[str, Any], home: Path) -> dict[str, Any]:
    env = {**os.environ, "SATSEG_HOME": str(home)}
    r = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(kw)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if r.returncode != 0:
        raise RuntimeError(f"{kw} failed:\n{r.stderr[-3000:]}")
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


def _scores(u: dict[str, Any]) -> str:
    parts = []
    for k in ("shipped", "raw"):
        x = u[k]
        parts.append(
            f"{k} IoU {x['iou']:.3f} (per image {x['mean_image_iou']:.3f}, P {x['precision']:.3f}"
            f" R {x['recall']:.3f}, object F1 {x['object_f1']:.3f}, boundary {x['boundary_iou']:.3f})"
        )
    return "; ".join(parts)


def _row(name: str, r: dict[str, Any]) -> str:
    u, v, pp = r["unseen"], r["val"], r["postprocess"]
    extra = "".join(
        f"\n  + predict {p}: {_scores(x)} in {x['score_s']:.0f} s"
        for p, x in r.get("unseen_with", {}).items()
    )
    return (
        f"{name:14s} unseen {_scores(u)} | val IoU {v['iou']:.3f} at threshold "
        f"{pp['threshold']:.2f}, min area {pp['min_area_px']} | {r['epochs']} epochs "
        f"(best {r['best_epoch']}) in {r['train_wall_s'] / 60:.1f} min, "
        f"{r['train_cpu_s'] / 60:.1f} CPU-min, scored in {r['score_s']:.0f} s{extra}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument(
        "--variants",
        nargs="+",
        default=["main", "default"],
        help="main | default | name:key=val,...",
    )
    ap.add_argument(
        "--budget-min",
        type=float,
        default=None,
        help="train.time_budget_min (default: params.yaml); 0 = none",
    )
    ap.add_argument("--epochs", type=int, default=0, help="train.epochs (0 = params.yaml)")
    ap.add_argument(
        "--predict-variants",
        nargs="+",
        default=[],
        help="name:key=val,... of predict: options; each model is also scored with each",
    )
    ap.add_argument(
        "--split",
        default=SPLIT,
        help="train:test Dubai tiles (default 1234:56); val is cut inside the train tiles",
    )
    ap.add_argument("--out", type=Path, help="write all figures as JSON here")
    ap.add_argument(
        "--keep", type=Path, help="keep each variant's model and predictions in KEEP/<variant>/"
    )
    args = ap.parse_args()
    if args.child:
        kw = json.loads(args.child)
        print(json.dumps(child_train(**kw), default=str))
        return
    global TRAIN_TILES, TEST_TILES
    TRAIN_TILES, TEST_TILES = split_tiles(args.split)
    os.environ["SATSEG_BENCH_SPLIT"] = args.split  # the children score the same tiles
    if not REAL.is_dir():
        print(f"real imagery not found at {REAL}: skipped")
        return
    from satseg.params import TrainParams

    budget = (
        args.budget_min if args.budget_min is not None else (TrainParams().time_budget_min or 0)
    )
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
        "budget_min": budget,
        "split": {"train": TRAIN_TILES, "test": TEST_TILES},
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="satseg-bench-quality-") as tmp:
        home = Path(tmp) / "home"
        t = time.perf_counter()
        data = ingest(home)
        counts = json.loads((data / "manifest.json").read_text())["counts"]
        print(
            f"ingest {', '.join(TRAIN_TILES)}: {counts} in {time.perf_counter() - t:.0f} s;"
            f" scored on {', '.join(TEST_TILES)}",
            flush=True,
        )
        for spec in args.variants:
            name, overrides = parse_variant(spec)
            kw = {
                "data": str(data),
                "overrides": overrides,
                "budget_min": budget,
                "epochs": args.epochs,
                "keep": str(args.keep / name) if args.keep else None,
                "predict_variants": dict(map(parse_variant, args.predict_variants)),
            }
            results["variants"][name] = r = {"overrides": overrides, **_spawn(kw, home)}
            print(_row(name, r), flush=True)
    results["load_avg_end"] = os.getloadavg()
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
