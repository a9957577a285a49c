"""ONNX Runtime beside TensorFlow: the artifacts' verification, the runtime rules, the
ORT predictor against TF, fallbacks (tampered file, no onnxruntime) and the outputs' tags.

The tiny models are the fixed-weight roof detectors of conftest.py, exported with satseg's
own registration step (``satseg.registry.artifacts.export``) on real tiles of a generated
scene: the ONNX graphs and the verification are real, only the model is small.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from satseg.inference.runtime import Host, OrtPredictor, resolve, select
from satseg.registry import artifacts as A

CPU = Host(gpu=False, bf16=False, ort_error=None)  # an AVX2-style CPU
BF16_CPU = Host(gpu=False, bf16=True, ort_error=None)
GPU = Host(gpu=True, bf16=False, ort_error=None)
NO_ORT = Host(gpu=False, bf16=False, ort_error="onnxruntime not importable (test)")
FAST = {"tile": 128, "overlap": 32, "opening_px": 0, "min_area_px": 0}


def _tiles(tmp: Path, n: int = 16, seed: int = 3) -> np.ndarray:
    from satseg.io.scene import open_scene
    from satseg.synthetic import make_scene

    sc = make_scene(tmp, f"t{seed}", 512, 512, seed=seed, labelme=False, geojson=False)
    with open_scene(sc.image) as src:
        rgb, _ = src.rows(0, 512)
    return np.stack(
        [rgb[y : y + 128, x : x + 128] for y in range(0, 512, 128) for x in range(0, 512, 128)]
    )[:n]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, roof_model: Any) -> tuple[Any, Path]:
    """The steep roof model with its fp32 + int8 ONNX artifacts (made once per module)."""
    tmp = tmp_path_factory.mktemp("onnx")
    tiles = _tiles(tmp)
    A.export(roof_model, tmp / "art", tiles[:8], tiles[8:], {"tile": 128})
    return roof_model, tmp / "art"


def _copy(src: Path, dst: Path) -> A.InferenceArtifacts:
    shutil.copytree(src, dst)
    art = A.load_dir(dst)
    assert art is not None
    return art


def test_export_verifies_fp32_and_records_the_contract(exported: tuple[Any, Path]) -> None:
    _, art_dir = exported
    meta = json.loads((art_dir / A.META).read_text())
    fp32 = meta["variants"]["fp32"]
    assert fp32["verified"] and fp32["max_abs_diff"] < 1e-4 and fp32["iou"] == 1.0
    assert fp32["sha256"] == A.sha256(art_dir / "model.onnx")
    assert meta["tile"] == 128 and meta["created_with"]["onnxruntime"]
    assert "int8" in meta["variants"]  # quantised; verified or not, the figures are recorded
    assert meta["variants"]["int8"]["verified"] == (
        meta["variants"]["int8"]["iou"] >= A.INT8_MIN_IOU
    )
    tiles, keras = A.load_dir(art_dir).samples()  # type: ignore[union-attr]
    assert tiles.dtype == np.uint8 and keras.shape == tiles.shape[:3]


def test_ort_predictor_equals_tensorflow(exported: tuple[Any, Path], tmp_path: Path) -> None:
    from satseg.inference.engine import Predictor
    from satseg.io.raster import to_model_input

    model, art_dir = exported
    x = to_model_input(_tiles(tmp_path, 6, seed=5))
    ort = OrtPredictor(art_dir / "model.onnx", 128, "fp32")
    tf = Predictor(model, 128, "fp32")
    got, want = ort(x), tf(x)
    assert got.dtype == np.float32 and got.shape == (6, 128, 128)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert ort.with_tile(256).tile == 256 and ort.with_tile(256).session is ort.session


def test_verification_rejects_a_graph_with_other_weights(
    exported: tuple[Any, Path], tmp_path: Path
) -> None:
    """A valid ONNX file that computes something else fails the registration check, and a
    worker whose file was swapped (hash updated too) catches it on the sample tiles."""
    import onnx
    from onnx import numpy_helper

    model, art_dir = exported
    art = _copy(art_dir, tmp_path / "art")
    proto = onnx.load(str(art.path("fp32")))
    for init in proto.graph.initializer:  # flip the sign of every weight (not the shapes)
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32:
            init.CopyFrom(numpy_helper.from_array(-w, init.name))
    onnx.save(proto, str(art.path("fp32")))
    x = _tiles(tmp_path, 4, seed=5).astype(np.float32) / 255
    keras = np.asarray(model(x))[..., -1]
    checked = A._verified(art.path("fp32"), x, keras, "fp32")
    assert not checked["verified"] and checked["reason"].startswith("failed: max |diff|")

    art.meta["variants"]["fp32"]["sha256"] = A.sha256(art.path("fp32"))  # hides the swap
    art.meta["variants"].pop("int8", None)
    pred = select(model, 128, "onnxruntime", "fp32", art, CPU)
    assert pred.choice.runtime == "tensorflow" and pred.precision == "fp32"
    assert (
        "sample check failed" in pred.choice.reason and "TensorFlow instead" in pred.choice.reason
    )


def test_tampered_file_falls_back_to_tensorflow(exported: tuple[Any, Path], tmp_path: Path) -> None:
    model, art_dir = exported
    art = _copy(art_dir, tmp_path / "art")
    for p in ("fp32", "int8"):
        with open(art.path(p), "r+b") as fh:  # one byte changed in the middle
            fh.seek(art.path(p).stat().st_size // 2)
            b = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([b[0] ^ 0xFF]))
    ok, why = art.usable("fp32")
    assert not ok and "differs from the one verified" in why
    pred = select(model, 128, "onnxruntime", "auto", art, CPU)
    assert (
        pred.choice.runtime == "tensorflow"
        and "differs from the one verified" in pred.choice.reason
    )


def test_runtime_rules(exported: tuple[Any, Path], tmp_path: Path) -> None:
    _, art_dir = exported
    art = A.load_dir(art_dir)
    int8_ok = art.usable("int8")[0]  # type: ignore[union-attr]
    best = "int8" if int8_ok else "fp32"
    # auto on a CPU without native bf16: the fastest verified ONNX graph
    c = resolve("auto", "auto", art, CPU)
    assert (c.runtime, c.precision) == ("onnxruntime", best) and "verified" in c.reason
    # bf16 CPU: verified int8 first, else TensorFlow bf16 (faster there than ORT fp32)
    c = resolve("auto", "auto", art, BF16_CPU)
    assert (c.runtime, c.precision) == (
        ("onnxruntime", "int8") if int8_ok else ("tensorflow", "bf16")
    )
    no_int8 = A.InferenceArtifacts(art.dir, {**art.meta, "variants": {"fp32": art.variant("fp32")}})  # type: ignore[union-attr]
    c = resolve("auto", "auto", no_int8, BF16_CPU)
    assert (c.runtime, c.precision) == ("tensorflow", "bf16") and "no ONNX int8" in c.reason
    c = resolve("auto", "auto", no_int8, CPU)
    assert (c.runtime, c.precision) == ("onnxruntime", "fp32")
    assert resolve("auto", "auto", art, GPU).runtime == "tensorflow"
    assert resolve("auto", "auto", art, GPU).precision == "fp32"
    # explicit choices are honoured where possible
    c = resolve("tensorflow", "auto", art, CPU)
    assert (c.runtime, c.precision, c.reason) == (
        "tensorflow",
        "fp32",
        "runtime tensorflow requested",
    )
    c = resolve("tensorflow", "int8", art, CPU)  # the TFLite path, on request
    assert (c.runtime, c.precision) == ("tensorflow", "int8")
    c = resolve("auto", "fp32", art, CPU)  # asked fp32: the verified ONNX fp32 graph ...
    assert (c.runtime, c.precision) == ("onnxruntime", "fp32")
    c = resolve("auto", "fp32", art, BF16_CPU)  # ... except where TF fp32 measured faster
    assert (c.runtime, c.precision) == ("tensorflow", "fp32") and "measured faster" in c.reason
    assert resolve("onnxruntime", "fp32", art, BF16_CPU).runtime == "onnxruntime"
    assert resolve("auto", "bf16", art, CPU).runtime == "tensorflow"
    # nothing to run ONNX with: TensorFlow, saying why
    for facts, artifacts, why in (
        (NO_ORT, art, "onnxruntime not importable"),
        (CPU, None, "no ONNX artifacts"),
        (
            CPU,
            "model version has no ONNX artifacts (registered before they existed)",
            "registered before",
        ),
    ):
        c = resolve("onnxruntime", "auto", artifacts, facts)
        assert c.runtime == "tensorflow" and c.precision == "fp32" and why in c.reason
        c = resolve("auto", "auto", artifacts, facts)
        assert c.runtime == "tensorflow" and why in c.reason
    with pytest.raises(ValueError, match="runtime 'tflite'"):
        resolve("tflite", "auto", art, CPU)
    if not int8_ok:  # an int8 graph that failed verification is never used
        c = resolve("onnxruntime", "int8", art, CPU)
        assert c.runtime == "tensorflow" and "failed verification" in c.reason


def test_params_reject_bf16_on_onnxruntime() -> None:
    from satseg.params import PredictParams, build

    with pytest.raises(Exception, match="bf16 runs on TensorFlow only"):
        build(PredictParams, {"runtime": "onnxruntime", "precision": "bf16"}, "predict options")
    with pytest.raises(Exception, match="runtime"):
        build(PredictParams, {"runtime": "tflite"}, "predict options")


def _scene(tmp: Path) -> Any:
    from satseg.synthetic import make_scene

    return make_scene(tmp / "in", "city", 300, 260, seed=4)


def _tags(path: str) -> dict[str, str]:
    import rasterio

    with rasterio.open(path) as src:
        return dict(src.tags())


def test_predict_scene_on_onnxruntime_matches_tensorflow(
    exported: tuple[Any, Path], tmp_path: Path, model_info: dict[str, Any]
) -> None:
    """Same scene through both runtimes: same masks; the choice and reason in every output."""
    import rasterio

    from satseg.inference.predict import predict_scene

    model, art_dir = exported
    sc = _scene(tmp_path)
    info = {**model_info, "artifacts": A.load_dir(art_dir)}
    a = predict_scene(
        model,
        sc.image,
        tmp_path / "tf",
        model_info=info,
        runtime="tensorflow",
        precision="fp32",
        **FAST,
    )
    b = predict_scene(
        model,
        sc.image,
        tmp_path / "ort",
        model_info=info,
        runtime="onnxruntime",
        precision="fp32",
        **FAST,
    )
    assert (a["runtime"], b["runtime"]) == ("tensorflow", "onnxruntime")
    assert "verified at registration" in b["runtime_reason"] and "requested" in a["runtime_reason"]
    with rasterio.open(a["outputs"]["mask"]) as ma, rasterio.open(b["outputs"]["mask"]) as mb:
        assert np.array_equal(ma.read(1), mb.read(1))
    tags = _tags(b["outputs"]["probability"])
    assert tags["runtime"] == "onnxruntime" and tags["runtime_reason"] == b["runtime_reason"]
    props = json.loads(Path(b["outputs"]["stac"]).read_text())["properties"]
    assert (
        props["satseg:runtime"] == "onnxruntime"
        and props["satseg:runtime_reason"] == b["runtime_reason"]
    )
    summary = json.loads((tmp_path / "ort" / "summary.json").read_text())
    assert summary["runtime"] == "onnxruntime" and summary["params"]["precision"] == "fp32"


def test_without_onnxruntime_tensorflow_says_so(
    exported: tuple[Any, Path],
    tmp_path: Path,
    model_info: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker where ``import onnxruntime`` fails still predicts, with TensorFlow."""
    from satseg.inference.predict import predict_scene

    model, art_dir = exported
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    info = {**model_info, "artifacts": A.load_dir(art_dir)}
    s = predict_scene(
        model,
        _scene(tmp_path).image,
        tmp_path / "out",
        model_info=info,
        runtime="onnxruntime",
        **FAST,
    )
    assert s["status"] == "ok" and s["runtime"] == "tensorflow"
    assert "onnxruntime not importable" in s["runtime_reason"]
    assert _tags(s["outputs"]["mask"])["runtime"] == "tensorflow"


def test_one_session_for_many_scenes(
    exported: tuple[Any, Path], tmp_path: Path, model_info: dict[str, Any]
) -> None:
    from satseg.inference import jobs
    from satseg.inference.params import PredictParams
    from satseg.synthetic import make_scene

    model, art_dir = exported
    scenes = [make_scene(tmp_path / "in", f"s{i}", 200, 200, seed=i).image for i in range(2)]
    info = {**model_info, "artifacts": A.load_dir(art_dir)}
    params = PredictParams(runtime="onnxruntime", precision="fp32", **FAST)
    seen: list[Any] = []
    real = OrtPredictor.__call__

    def spy(self: OrtPredictor, batch: np.ndarray) -> np.ndarray:
        seen.append(self.session)
        return real(self, batch)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(OrtPredictor, "__call__", spy)
        out = jobs.predict_many(model, info, scenes, tmp_path / "out", params)
    assert [r["runtime"] for r in out] == ["onnxruntime", "onnxruntime"]
    assert len(seen) >= 2 and all(s is seen[0] for s in seen)
