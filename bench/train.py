"""Training benchmark: speed, memory and what a fixed budget learns (CPU).

    python bench/train.py                          # synthetic: speed/RSS per arch + IoU after budget
    python bench/train.py --budget-min 2 --archs linknet unet
    python bench/train.py --real --real-min 12     # + Dubai imagery through satseg_ingest/satseg_retrain
    python bench/train.py --real-multiclass        # land cover: 5 classes, tiles 1-4 -> tiles 5-6
    python bench/train.py --real-multiclass --dry-run              # check data + params only
    python bench/train.py --real-multiclass --mc-epochs 1 --mc-limit 2   # quick smoke run
    python bench/train.py --real-multiclass --mc-models multiclass --mc-variants default \\
        balanced:class_weighting=balanced                  # a train: change beside the defaults

Unseen-tile quality (train on Dubai tiles 1-4, score tiles 5-6) is ``bench/quality.py``.

Measured in one run, on the same generated 256 px patches:

* **speed**: training patches/s of each arch (LinkNet/UNet/MA-Net, ResNet-18 encoder, batch 8,
  the real tf.data pipeline with augmentation, decoded patches cached in RAM) in fp32 and
  mixed bfloat16 (``train.precision``), and the peak RSS of its process. Baseline: the
  input pipeline alone (decode + augment, no model), to show it is not the bottleneck.
* **quality**: val IoU after ``--budget-min`` minutes of training per arch, against two trivial
  baselines: all background (IoU 0) and the best global brightness threshold (chosen on the
  train split; roofs are brighter than ground in these scenes).
* **real** (``--real``): ``../shared/data/real/dubai_buildings`` dropped into the inbox,
  ingested by ``satseg_ingest`` and trained by ``satseg_retrain`` (``dag.test()``), building IoU
  on the ingest's val split against all-background, and the wall time of each DAG.

* **real multi-class** (``--real-multiclass``): the product's default retrain with
  ``SATSEG_PARAMS_FILE=include/params.multiclass.yaml`` (its class table: building, land, road,
  vegetation, water; unlabeled = ignore). Tiles 1-4 of ``../shared/data/real/dubai_multiclass``
  (LabelMe JSON + JPEG) go into the inbox, ``satseg_ingest`` and ``satseg_retrain`` run with
  ``dag.test()`` (val split inside tiles 1-4, ``train:`` defaults, conf ``dataset`` + ``force``
  only), and the newly registered model predicts the 18 images of tiles 5-6 (never seen, never
  used for model selection): sliding 256 px tiles, 64 px overlap, sin⁴ blending
  (``satseg.inference.blend``), class = argmax of the softmax channels. Scored against
  ``<stem>_classes.png`` mapped through the class table (``ClassTable.value_lut``: 1..5 ->
  classes 0..4, 0 = unlabeled = ignored) with ``satseg.metrics.ClassScorer``, pooled over the
  18 images: per-class IoU, mIoU, pixel accuracy. Beside it, the same flow with the binary
  defaults on ``dubai_buildings`` tiles 1-4, scored on the same truth (building = class 1,
  unlabeled ignored) at its tuned threshold: the building IoU multi-class training gives up or
  gains. Each model runs in its own subprocess and SATSEG_HOME; wall time of each stage.

Every measurement runs in its own subprocess (its own ``ru_maxrss``). Timings on a shared CPU
are noisy: CPU time is printed beside wall time; compare figures of one run only.
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
from satseg.params import ARCHS  # noqa: E402  (after sys.path; pydantic + yaml only)

REAL = REPO.parent / "shared" / "data" / "real" / "dubai_buildings"
REAL_MC = REPO.parent / "shared" / "data" / "real" / "dubai_multiclass"
MC_PARAMS = REPO / "include" / "params.multiclass.yaml"
TRAIN_TILES = ("tile1", "tile2", "tile3", "tile4")
TEST_TILES = ("tile5", "tile6")


def _usage() -> dict[str, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"rss_mib": ru.ru_maxrss / 1024.0, "cpu_s": ru.ru_utime + ru.ru_stime}


# --------------------------------------------------------------------------- children
def child_pipeline(data: str, batches: int) -> dict[str, Any]:
    from satseg.training.data import list_split, make_dataset

    ds = make_dataset(list_split(data, "train"), 8, augment=True, shuffle=True, repeat=True)
    it = iter(ds)
    next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return {"patches_s": batches * 8 / (time.perf_counter() - t), **_usage()}


def child_speed(data: str, arch: str, steps: int, precision: str = "fp32") -> dict[str, Any]:
    import tensorflow as tf

    from satseg.inference.engine import to_mixed_bfloat16
    from satseg.models import build_model
    from satseg.training.data import list_split, make_dataset
    from satseg.training.losses import bce_dice, metrics

    tf.keras.utils.set_random_seed(0)
    ds = make_dataset(
        list_split(data, "train"), 8, augment=True, shuffle=True, repeat=True, cache=True
    )
    model = build_model(arch, "resnet18")
    model = to_mixed_bfloat16(model) if precision == "bf16" else model  # as fit() trains it
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=bce_dice, metrics=metrics())
    model.fit(ds, epochs=1, steps_per_epoch=2, verbose=0)  # trace + warm up
    cpu0 = _usage()["cpu_s"]
    t = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=steps, verbose=0)
    wall = time.perf_counter() - t
    u = _usage()
    return {
        "patches_s": steps * 8 / wall,
        "cpu_s_per_patch": (u["cpu_s"] - cpu0) / (steps * 8),
        **u,
    }


def child_quality(data: str, arch: str, minutes: float) -> dict[str, Any]:
    from satseg.training.config import TrainConfig
    from satseg.training.evaluate import evaluate
    from satseg.training.fit import fit

    cfg = TrainConfig(
        arch=arch, epochs=1000, batch_size=8, patience=1000, time_budget_min=minutes, seed=0
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        model, history = fit(data, cfg, Path(work))
    wall = time.perf_counter() - t
    return {
        **evaluate(model, data, "val"),
        "epochs": len(history["loss"]),
        "wall_s": wall,
        **_usage(),
    }


def brightness_baseline(data: str) -> dict[str, float]:
    """Best global threshold on mean brightness, chosen on train, scored on val."""
    import cv2
    import numpy as np

    from satseg.metrics import pixel_scores as scores
    from satseg.training.data import list_split

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        sp = list_split(data, split)
        grey = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sp.images])
        mask = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127 for p in sp.masks])
        return grey, mask

    def iou(grey: np.ndarray, mask: np.ndarray, thr: int) -> dict[str, float]:
        pred = grey > thr
        return scores(
            int((pred & mask).sum()), int((pred & ~mask).sum()), int((~pred & mask).sum())
        )

    g, m = load("train")
    best = max(range(0, 255, 5), key=lambda thr: iou(g, m, thr)["iou"])
    gv, mv = load("val")
    return {**iou(gv, mv, best), "threshold": best}


def all_background(data: str, split: str = "val") -> dict[str, float]:
    import cv2

    from satseg.metrics import pixel_scores as scores
    from satseg.training.data import list_split

    masks = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127 for p in list_split(data, split).masks]
    fg = int(sum(int(m.sum()) for m in masks))
    px = int(sum(m.size for m in masks))
    return {**scores(0, 0, fg), "pixel_accuracy": 1 - fg / px, "foreground_share": fg / px}


def _spawn(kind: str, **kw: Any) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, __file__, "--child", kind, json.dumps(kw)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        out = (r.stdout + r.stderr).splitlines()  # dag.test() logs tasks to stdout
        errors = [line[:300] for line in out if "Error" in line or "[error" in line]
        raise RuntimeError(
            f"{kind} {kw} failed:\n" + "\n".join(errors[-6:]) + f"\n...\n{r.stderr[-2000:]}"
        )
    return dict(json.loads(r.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- synthetic
def make_data(root: Path, n_train: int, n_val: int) -> Path:
    from satseg.synthetic import SceneStyle
    from satseg.training.sample import write_sample_dataset

    return write_sample_dataset(
        root / "synthetic",
        n_train=n_train,
        n_val=n_val,
        size=256,
        seed=7,
        style=SceneStyle(building_density=1.0),
    )


def synthetic(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    data = str(make_data(root, args.train_patches, args.val_patches))
    out: dict[str, Any] = {"pipeline": _spawn("pipeline", data=data, batches=10), "speed": {}}
    print(f"input pipeline alone: {out['pipeline']['patches_s']:.0f} patches/s", flush=True)
    for arch in args.archs:
        for prec in args.precisions:
            kw = {"data": data, "arch": arch, "steps": args.steps, "precision": prec}
            out["speed"][f"{arch}/{prec}"] = s = _spawn("speed", **kw)
            print(
                f"{arch:8s} {prec} train {s['patches_s']:.1f} patches/s "
                f"({s['cpu_s_per_patch']:.2f} CPU s/patch), peak RSS {s['rss_mib']:.0f} MiB",
                flush=True,
            )
    out["baselines"] = {
        "all_background": all_background(data),
        "brightness": brightness_baseline(data),
    }
    out["quality"] = {}
    for arch in args.archs:
        out["quality"][arch] = q = _spawn("quality", data=data, arch=arch, minutes=args.budget_min)
        print(
            f"{arch:8s} val IoU {q['iou']:.3f} after {args.budget_min} min "
            f"({q['epochs']} epochs, {q['cpu_s']:.0f} CPU s)",
            flush=True,
        )
    return out


# --------------------------------------------------------------------------- real data
def _airflow_env(root: Path) -> None:
    home = root / "airflow"
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "SATSEG_HOME": str(root / "home"),
        }
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=os.environ)


def real(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Dubai imagery through both DAGs, as production would run them."""
    import yaml

    _airflow_env(root)
    params = yaml.safe_load((REPO / "include" / "params.yaml").read_text())
    params["train"]["time_budget_min"] = args.real_min
    if args.real_patch:  # patch edge for ingest (stride = edge: no overlap, as the default)
        params["preprocess"]["patch_size"] = params["preprocess"]["stride"] = args.real_patch
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    os.environ["SATSEG_PARAMS_FILE"] = str(root / "params.yaml")

    from airflow.dag_processing.dagbag import DagBag

    from satseg.config import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    inbox = settings.inbox / "dubai"
    inbox.mkdir(parents=True, exist_ok=True)
    for p in sorted((REAL / "labelme").iterdir()):
        shutil.copy(p, inbox / p.name)
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    t = time.perf_counter()
    ingest_run = bag.dags["satseg_ingest"].test()
    ingest_s = time.perf_counter() - t
    data = settings.processed / "dubai"
    manifest = json.loads((data / "manifest.json").read_text())
    print(
        f"ingest: {ingest_run.state} in {ingest_s:.0f} s, counts {manifest['counts']}", flush=True
    )
    conf = {
        "arch": args.real_arch,
        "backbone": args.real_backbone,
        "epochs": args.real_epochs,
        "batch_size": 8,
        "learning_rate": args.real_lr,
        "dataset": "dubai",
        "force": True,
        "sweep": None,
    }
    cpu0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    t = time.perf_counter()
    retrain_run = bag.dags["satseg_retrain"].test(run_conf=conf)
    retrain_s = time.perf_counter() - t
    cpu_s = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0

    import mlflow

    from satseg.registry import champion
    from satseg.registry.tracking import setup

    setup(settings)
    (run,) = mlflow.search_runs(output_format="list")
    champ = champion(settings)
    res = {
        "ingest": {
            "state": str(ingest_run.state),
            "wall_s": ingest_s,
            "counts": manifest["counts"],
        },
        "retrain": {
            "state": str(retrain_run.state),
            "wall_s": retrain_s,
            "cpu_user_s": cpu_s,
            "config": conf,
            "time_budget_min": args.real_min,
            "epochs_run": len(
                {m.step for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")}
            ),
            "val": {
                k.removeprefix("final_val_"): v
                for k, v in run.data.metrics.items()
                if k.startswith("final_val_")
            },
            "champion": champ.to_dict() if champ else None,
        },
        "baselines": {
            "all_background": all_background(str(data)),
            "brightness": brightness_baseline(str(data)),
        },
    }
    v = res["retrain"]["val"]
    print(
        f"retrain: {retrain_run.state} in {retrain_s:.0f} s wall, {res['retrain']['epochs_run']} epochs: "
        f"building IoU {v.get('iou', float('nan')):.3f} (dice {v.get('dice', float('nan')):.3f}) vs "
        f"all-background IoU 0.000, brightness threshold IoU {res['baselines']['brightness']['iou']:.3f}",
        flush=True,
    )
    return res


# --------------------------------------------------------------------------- real multi-class
def _tile_files(folder: Path, tiles: tuple[str, ...], limit: int | None) -> list[Path]:
    """``<stem>.jpg`` of ``tiles`` in ``folder``, the first ``limit`` of each tile."""
    out: list[Path] = []
    for tile in tiles:
        imgs = sorted(folder.glob(f"{tile}_*.jpg"))
        out += imgs[:limit] if limit else imgs
    return out


def mc_params_file(
    root: Path,
    kind: str,
    epochs: int,
    budget_min: float | None,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """The params file of one model: the product's own (``params.multiclass.yaml`` for
    ``multiclass``, the committed defaults for ``binary``), or a copy with a variant's
    ``train:`` overrides and the smoke run's ``train.epochs`` / ``train.time_budget_min``
    on top."""
    import yaml

    base = MC_PARAMS if kind == "multiclass" else REPO / "include" / "params.yaml"
    train: dict[str, Any] = dict(overrides or {})
    if epochs:
        train["epochs"] = epochs
    if budget_min is not None:
        train["time_budget_min"] = budget_min if budget_min > 0 else None
    if not train:
        return base
    doc = yaml.safe_load(base.read_text()) or {}
    doc["train"] = {**(doc.get("train") or {}), **train}
    path = root / f"params.{kind}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def mc_truth(classes_png: Path, lut: Any) -> Any:
    """Class indices of a ``_classes.png`` (through the class table; unlabeled -> 255)."""
    import cv2

    raw = cv2.imread(str(classes_png), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise RuntimeError(f"{classes_png}: not a readable PNG")
    return lut[raw if raw.ndim == 2 else raw[..., 0]]


def predict_channels(fn: Any, rgb: Any, tile: int = 256, overlap: int = 64) -> Any:
    """(h, w, channels) output of ``fn`` (batch -> model output) on a whole image: blended
    sliding tiles (sin⁴ window, as ``satseg predict``)."""
    import numpy as np

    from satseg.inference.blend import positions, weight_window
    from satseg.io.raster import to_model_input

    h, w = rgb.shape[:2]
    ph, pw = max(h, tile), max(w, tile)
    img = np.zeros((ph, pw, 3), np.float32)
    img[:h, :w] = to_model_input(rgb)
    win = weight_window(tile)[..., None]
    acc: Any = None
    wsum = np.zeros((ph, pw, 1), np.float32)
    origins = [
        (y, x)
        for y in positions(ph, tile, tile - overlap)
        for x in positions(pw, tile, tile - overlap)
    ]
    for i in range(0, len(origins), 8):
        chunk = origins[i : i + 8]
        out = np.asarray(fn(np.stack([img[y : y + tile, x : x + tile] for y, x in chunk])))
        if acc is None:
            acc = np.zeros((ph, pw, out.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, out, strict=True):
            acc[y : y + tile, x : x + tile] += p * win
            wsum[y : y + tile, x : x + tile] += win
    return (acc / np.maximum(wsum, 1e-6))[:h, :w]


def score_mc_tiles(model: Any, ref: Any, limit: int | None, lut: Any, names: Any) -> dict:
    """Per-class scores on tiles 5-6 (``ClassScorer``, pooled), and the building IoU that a
    binary ``ref`` gives on the same truth (its tuned threshold, unlabeled ignored)."""
    import cv2
    import numpy as np
    import tensorflow as tf

    from satseg.classes import IGNORE, ModelClasses
    from satseg.metrics import ClassScorer

    mc = ModelClasses.from_json(ref.classes)
    building = list(names).index("building")
    threshold = float((ref.postprocess or {}).get("threshold", 0.5))
    scorer = ClassScorer(tuple(mc.names)) if mc.multiclass else ClassScorer(("other", "building"))
    images = _tile_files(REAL_MC, TEST_TILES, limit)
    fn = tf.function(lambda x: tf.cast(model(x, training=False), tf.float32), reduce_retracing=True)
    t = time.perf_counter()
    for img in images:
        rgb = cv2.cvtColor(cv2.imread(str(img), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        truth = mc_truth(img.with_name(f"{img.stem}_classes.png"), lut)
        out = predict_channels(fn, rgb)
        if mc.multiclass:
            if tuple(mc.names) != tuple(names):
                raise RuntimeError(f"model classes {mc.names} are not the table's {names}")
            scorer.update(truth, np.argmax(out, axis=-1).astype(np.uint8))
        else:  # building vs everything else, on the same labelled pixels
            t2 = np.where(truth == IGNORE, IGNORE, (truth == building).astype(np.uint8))
            scorer.update(t2, (out[..., -1] > threshold).astype(np.uint8))
    res = scorer.result()
    out_doc: dict[str, Any] = {"images": len(images), "predict_s": time.perf_counter() - t}
    if mc.multiclass:
        out_doc.update(
            {
                "per_class_iou": {n: res[f"iou_{n}"] for n in mc.names},
                "miou": res["miou"],
                "mdice": res["mdice"],
                "pixel_accuracy": res["pixel_accuracy"],
                "building_iou": res["iou_building"],
            }
        )
    else:
        out_doc.update({"building_iou": res["iou_building"], "threshold": threshold})
    return out_doc


def child_real_mc(
    model: str,
    root: str,
    epochs: int,
    budget_min: float | None,
    limit: int | None,
    variant: str = "default",
    train: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One model (``multiclass`` | ``binary``, with a variant's ``train:`` overrides)
    through satseg_ingest + satseg_retrain (``dag.test()``), scored on tiles 5-6."""
    kind = model
    home_root = Path(root) / (kind if variant == "default" else f"{kind}-{variant}")
    home_root.mkdir(parents=True, exist_ok=True)
    params = mc_params_file(home_root, kind, epochs, budget_min, train)
    os.environ["SATSEG_PARAMS_FILE"] = str(params)
    _airflow_env(home_root)

    from airflow.dag_processing.dagbag import DagBag

    from satseg.classes import ClassTable
    from satseg.config import get_settings, reset_settings_cache
    from satseg.params import load_params

    reset_settings_cache()
    settings = get_settings()
    settings.ensure_dirs()
    table = ClassTable.from_params(load_params(MC_PARAMS).ingest)
    assert table is not None, f"{MC_PARAMS} has no class table"
    dataset = "dubai_mc" if kind == "multiclass" else "dubai"
    src = REAL_MC if kind == "multiclass" else REAL / "labelme"
    inbox = settings.inbox / dataset
    inbox.mkdir(parents=True, exist_ok=True)
    for img in _tile_files(src, TRAIN_TILES, limit):
        for p in (img, img.with_suffix(".json")):
            shutil.copy(p, inbox / p.name)
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    t = time.perf_counter()
    ingest_run = bag.dags["satseg_ingest"].test()
    ingest_s = time.perf_counter() - t
    manifest = json.loads((settings.processed / dataset / "manifest.json").read_text())
    print(f"{kind} ingest: {ingest_run.state} in {ingest_s:.0f} s", file=sys.stderr, flush=True)
    conf = {"dataset": dataset, "force": True}  # the default retrain: train: from params
    t = time.perf_counter()
    retrain_run = bag.dags["satseg_retrain"].test(run_conf=conf)
    retrain_s = time.perf_counter() - t

    from satseg import registry

    refs = registry.list_models(settings)
    if not refs:
        raise RuntimeError(
            f"{kind}: satseg_retrain ({retrain_run.state}) registered no model (its errors above)"
        )
    net, ref = registry.load_model(settings, refs[0].version)
    return {
        "kind": kind,
        "variant": variant,
        "train_overrides": train or {},
        "params_file": str(params),
        "ingest": {
            "state": str(ingest_run.state),
            "wall_s": ingest_s,
            "counts": manifest.get("counts"),
            "class_pixels": manifest.get("class_pixels"),
        },
        "retrain": {
            "state": str(retrain_run.state),
            "wall_s": retrain_s,
            "model_version": ref.version,
            "val_metrics": ref.metrics,
            "classes": ref.classes,
        },
        "unseen": score_mc_tiles(net, ref, limit, table.value_lut(), table.names),
    }


def parse_mc_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``default`` | ``name:key=val,key=val`` (``train:`` fields, values as YAML scalars)."""
    import yaml

    name, _, rest = spec.partition(":")
    train = {}
    for item in filter(None, rest.split(",")):
        key, _, val = item.partition("=")
        train[key] = yaml.safe_load(val)
    return name, train


def real_multiclass_plan(args: argparse.Namespace) -> dict[str, Any]:
    """What ``--real-multiclass`` would run, checked without training (``--dry-run``): the
    data is there and complete, the params load, the truth maps onto the class table."""
    import numpy as np

    from satseg.classes import IGNORE, ClassTable
    from satseg.params import load_params

    table = ClassTable.from_params(load_params(MC_PARAMS).ingest)
    if table is None:
        raise SystemExit(f"{MC_PARAMS}: no ingest.classes")
    train = _tile_files(REAL_MC, TRAIN_TILES, args.mc_limit)
    test = _tile_files(REAL_MC, TEST_TILES, args.mc_limit)
    missing = [
        str(p)
        for img in train + test
        for p in (img.with_suffix(".json"), img.with_name(f"{img.stem}_classes.png"))
        if not p.is_file()
    ]
    if "binary" in args.mc_models:
        missing += [
            str(img.with_suffix(".json"))
            for img in _tile_files(REAL / "labelme", TRAIN_TILES, args.mc_limit)
            if not img.with_suffix(".json").is_file()
        ]
    if missing or not train or not test:
        raise SystemExit(
            f"dubai_multiclass incomplete: {len(train)} train, {len(test)} test "
            f"images; missing {missing[:5]}"
        )
    lut = table.value_lut()
    pixels = np.zeros(256, np.int64)
    for img in test:
        pixels += np.bincount(
            mc_truth(img.with_name(f"{img.stem}_classes.png"), lut).ravel(), minlength=256
        )
    return {
        "params_file": str(MC_PARAMS),
        "classes": list(table.names),
        "train_images": len(train),
        "test_images": len(test),
        "test_pixels": {
            **{n: int(pixels[i]) for i, n in enumerate(table.names)},
            "ignored": int(pixels[IGNORE]),
        },
        "models": list(dict.fromkeys(args.mc_models)),
        "epochs": args.mc_epochs or "params",
        "budget_min": "params" if args.mc_budget_min is None else args.mc_budget_min,
    }


def real_multiclass(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    plan = real_multiclass_plan(args)
    print(
        f"multi-class plan: {plan['train_images']} train / {plan['test_images']} test images, "
        f"classes {plan['classes']}, test pixels {plan['test_pixels']}",
        flush=True,
    )
    if args.dry_run:
        return {"plan": plan, "dry_run": True}
    out: dict[str, Any] = {"plan": plan}
    runs = [
        (kind, *parse_mc_variant(v))
        for kind in plan["models"]
        for v in (args.mc_variants if kind == "multiclass" else ["default"])
    ]
    for kind, variant, train in runs:
        label = kind if variant == "default" else f"{kind}:{variant}"
        kw = {
            "model": kind,
            "root": str(root / "mc"),
            "epochs": args.mc_epochs,
            "budget_min": args.mc_budget_min,
            "limit": args.mc_limit,
            "variant": variant,
            "train": train,
        }
        t = time.perf_counter()
        try:
            out[label] = r = _spawn("realmc", **kw)
        except RuntimeError as e:  # one model failing must not hide the other's figures
            out[label] = {"error": str(e)[-4000:], "wall_s": time.perf_counter() - t}
            print(f"{label}: FAILED\n{str(e)[:1500]}", flush=True)
            continue
        r["wall_s"] = time.perf_counter() - t
        u = r["unseen"]
        if kind == "multiclass":
            per = ", ".join(f"{n} {v:.3f}" for n, v in u["per_class_iou"].items())
            print(
                f"{label}: tiles 5-6 mIoU {u['miou']:.3f} ({per}), pixel accuracy "
                f"{u['pixel_accuracy']:.3f} (val mIoU "
                f"{r['retrain']['val_metrics'].get('val_miou', float('nan')):.3f}); "
                f"ingest {r['ingest']['wall_s']:.0f} s, retrain "
                f"{r['retrain']['wall_s'] / 60:.1f} min, total {r['wall_s'] / 60:.1f} min",
                flush=True,
            )
        else:
            print(
                f"binary: tiles 5-6 building IoU {u['building_iou']:.3f} (threshold "
                f"{u['threshold']}); retrain {r['retrain']['wall_s'] / 60:.1f} min",
                flush=True,
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--child", nargs=2, metavar=("KIND", "JSON"), help=argparse.SUPPRESS)
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--steps", type=int, default=8, help="timed training steps per arch")
    ap.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16"],
        help="training precisions timed (bf16 is emulated, slowly, without AVX512_BF16/AMX)",
    )
    ap.add_argument("--budget-min", type=float, default=2.0, help="training minutes per arch")
    ap.add_argument("--train-patches", type=int, default=48)
    ap.add_argument("--val-patches", type=int, default=12)
    ap.add_argument(
        "--synthetic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the synthetic speed/quality runs (default: on, off with --real-multiclass)",
    )
    ap.add_argument("--real", action="store_true", help="also train on the Dubai imagery")
    ap.add_argument("--real-min", type=float, default=12.0, help="training minutes (real data)")
    ap.add_argument("--real-arch", default="linknet", choices=ARCHS)
    ap.add_argument("--real-backbone", default="resnet18")
    ap.add_argument("--real-epochs", type=int, default=100)
    ap.add_argument("--real-lr", type=float, default=1e-3)
    ap.add_argument("--real-patch", type=int, help="patch size for ingest (default: params.yaml)")
    mc = ap.add_argument_group("real multi-class (dubai_multiclass, params.multiclass.yaml)")
    mc.add_argument(
        "--real-multiclass",
        action="store_true",
        help="default retrain on Dubai tiles 1-4 (5 classes), per-class IoU/mIoU on tiles 5-6",
    )
    mc.add_argument(
        "--dry-run", action="store_true", help="check data and params, print the plan, no training"
    )
    mc.add_argument("--mc-epochs", type=int, default=0, help="train.epochs (0 = params file)")
    mc.add_argument(
        "--mc-budget-min",
        type=float,
        default=None,
        help="train.time_budget_min (default: params file; 0 = none)",
    )
    mc.add_argument(
        "--mc-limit", type=int, default=None, help="first N images of each tile (smoke runs)"
    )
    mc.add_argument(
        "--mc-variants",
        nargs="+",
        default=["default"],
        help="multi-class runs, one after another: default | name:key=val,... (train: "
        "overrides of params.multiclass.yaml), e.g. default balanced:class_weighting=balanced",
    )
    mc.add_argument(
        "--mc-models",
        nargs="+",
        default=["multiclass", "binary"],
        choices=["multiclass", "binary"],
        help="multiclass: 5 classes; binary: the building model on dubai_buildings tiles 1-4, "
        "scored on the same truth (default: both)",
    )
    ap.add_argument("--out", type=Path, help="write all figures as JSON here")
    args = ap.parse_args()
    if args.synthetic is None:
        args.synthetic = not args.real_multiclass
    if args.child:
        kind, kw = args.child[0], json.loads(args.child[1])
        fn = {
            "pipeline": child_pipeline,
            "speed": child_speed,
            "quality": child_quality,
            "realmc": child_real_mc,
        }[kind]
        print(json.dumps(fn(**kw), default=str))
        return
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="satseg-bench-train-") as tmp:
        root = Path(tmp)
        if args.synthetic:
            results["synthetic"] = synthetic(args, root)
        if args.real:
            if not REAL.is_dir():
                print(f"real imagery not found at {REAL}: skipped")
            else:
                results["real"] = real(args, root)
        if args.real_multiclass:
            if not REAL_MC.is_dir():
                print(f"multi-class imagery not found at {REAL_MC}: skipped")
            else:
                results["real_multiclass"] = real_multiclass(args, root)
    results["load_avg_end"] = os.getloadavg()
    print(json.dumps(results, indent=2, default=str))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
