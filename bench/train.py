"""Training benchmark: speed, memory and what a fixed budget learns (CPU).

    python bench/train.py                          # synthetic: speed/RSS per arch + IoU after budget
    python bench/train.py --budget-min 2 --archs linknet unet
    python bench/train.py --real --real-min 12     # + Dubai imagery through satseg_ingest/satseg_retrain

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
        raise RuntimeError(f"{kind} {kw} failed:\n{r.stderr[-3000:]}")
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
    ap.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--real", action="store_true", help="also train on the Dubai imagery")
    ap.add_argument("--real-min", type=float, default=12.0, help="training minutes (real data)")
    ap.add_argument("--real-arch", default="linknet", choices=ARCHS)
    ap.add_argument("--real-backbone", default="resnet18")
    ap.add_argument("--real-epochs", type=int, default=100)
    ap.add_argument("--real-lr", type=float, default=1e-3)
    ap.add_argument("--real-patch", type=int, help="patch size for ingest (default: params.yaml)")
    ap.add_argument("--out", type=Path, help="write all figures as JSON here")
    args = ap.parse_args()
    if args.child:
        kind, kw = args.child[0], json.loads(args.child[1])
        fn = {"pipeline": child_pipeline, "speed": child_speed, "quality": child_quality}[kind]
        print(json.dumps(fn(**kw)))
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
    results["load_avg_end"] = os.getloadavg()
    print(json.dumps(results, indent=2, default=str))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
