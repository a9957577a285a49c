"""Cost of test-time augmentation and of post-processing tuning, measured in one run.

    python bench/tta.py               # 768² scene, LinkNet-ResNet18, tta none | flips | d4
    python bench/tta.py --size 1024

* **TTA**: ``predict_scene`` end to end (every output, the uncertainty COG included) with
  ``predict.tta`` none, flips (4 views) and d4 (8 views); seconds, model seconds, and the
  ratio to ``none`` from the same run. The model's weights are random: only time matters.
* **tuning**: seconds per 256² val patch to score the 11 x 5 (threshold, min area) grid
  that evaluation searches (``training.evaluate.tune``'s post-processing and scoring,
  without the model pass).

Timings on a shared CPU are noisy: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_tta(size: int, work: Path) -> None:
    from satseg.inference.predict import predict_scene
    from satseg.models import build_model
    from satseg.synthetic import make_scene

    model = build_model("linknet", "resnet18", (None, None, 3), classes=1)
    scene = make_scene(work / "in", "city", size, size, seed=1, labelme=False).image
    info = {"name": "bench", "version": "0", "run_id": None, "dataset_tag": None}
    kw = {"precision": "fp32", "tile": 256, "overlap": 64, "force": True}
    predict_scene(model, scene, work / "warm", model_info=info, **kw)  # trace the graph once
    base = None
    print(f"{'tta':<6} {'views':>5} {'seconds':>8} {'model s':>8} {'x none':>7}")
    for mode, views in (("none", 1), ("flips", 4), ("d4", 8)):
        t0 = time.perf_counter()
        res = predict_scene(model, scene, work / mode, model_info=info, tta=mode, **kw)
        sec = time.perf_counter() - t0
        base = base or sec
        print(f"{mode:<6} {views:>5} {sec:>8.1f} {res['model_seconds']:>8.1f} {sec / base:>7.2f}")


def bench_tuning(n: int = 8) -> None:
    import cv2
    import numpy as np

    from satseg.metrics import Scorer
    from satseg.training.evaluate import MIN_AREAS, THRESHOLDS, score_grid

    rng = np.random.default_rng(0)
    probs = [cv2.GaussianBlur(rng.random((256, 256), np.float32), (0, 0), 6) for _ in range(n)]
    probs = [(p - p.min()) / (p.max() - p.min()) for p in probs]
    truths = [p > 0.55 for p in probs]
    scorers = {(t, a): Scorer() for t in THRESHOLDS for a in MIN_AREAS}
    t0 = time.perf_counter()
    for truth, prob in zip(truths, probs, strict=True):
        score_grid(scorers, truth, prob, 3)
    per = (time.perf_counter() - t0) / n
    print(f"tuning grid {len(scorers)} combinations: {per:.3f} s per 256² patch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=768, help="scene edge (px)")
    args = ap.parse_args()
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores)")
    with tempfile.TemporaryDirectory(prefix="satseg-bench-tta-") as d:
        bench_tta(args.size, Path(d))
    bench_tuning()


if __name__ == "__main__":
    main()
