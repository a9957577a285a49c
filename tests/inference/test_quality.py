"""Model-tuned post-processing, TTA + uncertainty and tidy footprints, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely

from satseg.inference.params import PredictParams
from satseg.inference.predict import predict_scene
from satseg.inference.tta import TTA, entropy, forward, inverse, views
from satseg.inference.vectorize import PolygonWriter, tidy
from satseg.synthetic import make_scene

FAST = {"precision": "fp32", "tile": 128, "overlap": 32}
ROOF_R = 158 / 255  # as conftest's roof model: between ground and the darkest roof


def read(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as d:
        return d.read(1)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("in"), "city", 300, 260, seed=5, labelme=False)


def test_model_without_tuned_values_predicts_exactly_as_before(
    tmp_path, scene, roof_model, model_info
) -> None:
    """A version registered before tuning ({} postprocess) = the old defaults 0.5 / 16."""
    old = predict_scene(roof_model, scene.image, tmp_path / "old", model_info=model_info, **FAST)
    explicit = predict_scene(
        roof_model,
        scene.image,
        tmp_path / "explicit",
        model_info=model_info,
        threshold=0.5,
        min_area_px=16,
        **FAST,
    )
    for key in ("probability", "mask", "uncertainty"):
        np.testing.assert_array_equal(read(old["outputs"][key]), read(explicit["outputs"][key]))
    assert old["postprocess_from"] == {"threshold": "fallback", "min_area_px": "fallback"}
    assert explicit["postprocess_from"] == {"threshold": "params", "min_area_px": "params"}
    assert (old["params"]["threshold"], old["params"]["min_area_px"]) == (0.5, 16)
    assert old["key"] == explicit["key"] and "tta" not in old["key"]["params"]
    with rasterio.open(old["outputs"]["mask"]) as d:
        assert d.tags()["threshold"] == "0.5"


def test_tuned_values_are_used_unless_the_user_sets_them(
    tmp_path, scene, roof_model, model_info
) -> None:
    info = {**model_info, "postprocess": {"threshold": 0.8, "min_area_px": 64}}
    tuned = predict_scene(roof_model, scene.image, tmp_path / "t", model_info=info, **FAST)
    assert (tuned["params"]["threshold"], tuned["params"]["min_area_px"]) == (0.8, 64)
    assert tuned["postprocess_from"] == {"threshold": "model", "min_area_px": "model"}
    user = predict_scene(
        roof_model, scene.image, tmp_path / "u", model_info=info, threshold=0.3, **FAST
    )
    assert (user["params"]["threshold"], user["params"]["min_area_px"]) == (0.3, 64)
    prob = read(tuned["outputs"]["probability"])
    high, low = read(tuned["outputs"]["mask"]) == 1, read(user["outputs"]["mask"]) == 1
    assert high.sum() < low.sum() and not (high & (prob < 204)).any()  # 0.8 * 255 = 204
    assert PredictParams().for_model(None).mask_rule() == (0.5, 16)
    with pytest.raises(ValueError, match="threshold"):  # a damaged stored value: a clear error
        PredictParams().for_model({"threshold": 2.0})
    with pytest.raises(ValueError, match="not resolved"):
        PredictParams().mask_rule()


def test_views_invert_and_tta_of_an_equivariant_model_changes_nothing(roof_model) -> None:
    from satseg.inference.engine import as_predictor

    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    assert len(views("flips")) == 4 and len(views("d4")) == 8 and views("none") == [(0, False)]
    for k, flip in views("d4"):
        y = forward(x, k, flip)[..., 0]
        np.testing.assert_array_equal(inverse(y, k, flip), x[..., 0])
    with pytest.raises(ValueError, match="tta 'd8'"):
        views("d8")

    def pointwise(b: np.ndarray) -> np.ndarray:  # equivariant under every view
        return b[..., 0] * 0.5 + 0.25

    mean, spread = TTA(pointwise, "d4").predict(x)
    np.testing.assert_allclose(mean, pointwise(x), atol=1e-6)
    assert spread is not None and float(spread.max()) < 1e-6
    cols = np.linspace(0, 1, 32, dtype=np.float32)

    def leftish(b: np.ndarray) -> np.ndarray:  # not equivariant: depends on the column
        return np.broadcast_to(cols, b.shape[:3]).copy()

    mean, spread = TTA(leftish, "flips").predict(x)
    np.testing.assert_allclose(mean, 0.5, atol=1e-6)  # a column and its mirror average out
    assert float(spread.max()) > 0.5
    plain = as_predictor(roof_model, 32, "fp32")
    np.testing.assert_allclose(TTA(plain, "none")(x), plain(x), atol=0)
    assert entropy(np.array([0.0, 0.5, 1.0])).tolist() == [0.0, 1.0, 0.0]


def test_the_entropy_table_is_within_one_level_of_the_logarithms() -> None:
    """The binary sink's uncertainty (``entropy_u8``, a 16-bit table) against
    ``to_u8(entropy(p))`` on every 16-bit step, random and extreme probabilities."""
    from satseg.inference.postprocess import to_u8
    from satseg.inference.tta import entropy_u8

    rng = np.random.default_rng(3)
    p = np.concatenate(
        [
            np.linspace(0, 1, 65536 * 7, dtype=np.float32),
            rng.random(7 * 10**4, dtype=np.float32) ** 8,  # crowded near 0, where it is steep
            np.array([0, 1e-7, 0.5, 1 - 1e-7, 1, -0.1, 1.1], np.float32),
        ]
    ).reshape(-1, 7)  # any shape
    got, want = entropy_u8(p), to_u8(entropy(np.clip(p, 0, 1)))
    assert got.dtype == np.uint8 and got.shape == p.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert entropy_u8(np.array([0.0, 0.5, 1.0], np.float32)).tolist() == [0, 255, 0]


@pytest.fixture(scope="module")
def lopsided_model():
    """Roof-bright test on the red channel 6 px to the left: flipped views disagree at edges."""
    import tensorflow as tf

    inp = tf.keras.Input((None, None, 3))
    conv = tf.keras.layers.Conv2D(1, (1, 13), padding="same", activation="sigmoid")
    model = tf.keras.Model(inp, conv(inp))
    k = np.zeros((1, 13, 3, 1), np.float32)
    k[0, 0, 0, 0] = 40.0
    conv.set_weights([k, np.array([-40.0 * ROOF_R], np.float32)])
    return model


@pytest.mark.parametrize("tta,kind", [("none", "entropy"), ("d4", "tta_variance")])
def test_uncertainty_cog_in_stac_and_summary(
    tmp_path, scene, lopsided_model, model_info, tta: str, kind: str
) -> None:
    res = predict_scene(
        lopsided_model, scene.image, tmp_path / tta, model_info=model_info, tta=tta, **FAST
    )
    assert res["tta"] == tta and res["uncertainty"] == kind
    unc_path = Path(res["outputs"]["uncertainty"])
    with rasterio.open(unc_path) as d, rasterio.open(res["outputs"]["probability"]) as p:
        assert (d.crs, d.transform, d.shape) == (p.crs, p.transform, p.shape)
        assert d.tags()["uncertainty"] == kind
        unc, prob = d.read(1), p.read(1)
    item = json.loads(Path(res["outputs"]["stac"]).read_text())
    assert item["assets"]["uncertainty"]["href"] == unc_path.name
    assert item["properties"]["satseg:tta"] == tta
    assert item["properties"]["satseg:uncertainty"] == kind
    if kind == "entropy":  # the binary entropy of the (blended) probability
        want = np.round(255 * entropy(prob / 255.0))
        near_half = np.abs(prob.astype(int) - 128) < 100  # entropy is steep near 0 and 1
        assert np.abs(unc[near_half] - want[near_half]).max() <= 3 and near_half.sum() > 50
        assert unc[(prob == 0) | (prob == 255)].max() <= 8  # p < 1/510: under 0.03 bit
    else:  # the views disagree near roof edges, agree inside roofs and on open ground
        assert 0.01 * unc.size < np.count_nonzero(unc > 25) < 0.5 * unc.size
    assert "tta" in res["key"]["params"] if tta != "none" else "tta" not in res["key"]["params"]


def _rotated_rectangle(h: int = 120, w: int = 120) -> np.ndarray:
    import cv2

    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.array([[20, 30], [70, 10], [85, 50], [35, 70]], np.int32)], 1)
    return m


def _pixel_polygon(mask: np.ndarray):
    from rasterio import features

    return next(shapely.geometry.shape(g) for g, _ in features.shapes(mask, mask=mask > 0))


def test_regularised_footprint_is_a_rectangle_and_simplify_keeps_it_valid() -> None:
    raw = _pixel_polygon(_rotated_rectangle())
    (square,) = tidy(raw, regularize=True)
    assert len(square.exterior.coords) == 5  # four corners
    assert square.intersection(raw).area / square.union(raw).area > 0.93
    (simple,) = tidy(raw, simplify_px=1.5)
    assert simple.is_valid and len(simple.exterior.coords) < len(raw.exterior.coords) / 4
    assert tidy(raw) == [raw] and tidy(shapely.Polygon()) == []


def test_a_building_across_tiles_and_chunks_stays_one_polygon(tmp_path) -> None:
    """The mask is vectorised in row chunks over the whole width (never per tile); a building
    cut by every chunk boundary comes out as one polygon, regularised as a whole."""
    from affine import Affine

    h, w = 300, 300
    mask = np.zeros((h, w), np.uint8)
    mask[40:260, 90:210] = 1  # crosses 128 px tile edges and every 23-row chunk
    mask[100:120, 90:150] = 0  # a notch, so regularisation has something to square
    for reg in (False, True):
        path = tmp_path / f"p{reg}.geojson"
        with PolygonWriter(path, w, h, None, Affine.identity(), regularize=reg) as pw:
            for r0 in range(0, h, 23):
                pw.push(r0, mask[r0 : r0 + 23])
        feats = json.loads(path.read_text())["features"]
        assert len(feats) == 1
        geom = shapely.geometry.shape(feats[0]["geometry"])
        assert geom.is_valid and abs(geom.area - mask.sum()) / mask.sum() < 0.02


def test_regularize_and_simplify_through_predict_scene(
    tmp_path, scene, roof_model, model_info
) -> None:
    plain = predict_scene(roof_model, scene.image, tmp_path / "a", model_info=model_info, **FAST)
    tidy_ = predict_scene(
        roof_model,
        scene.image,
        tmp_path / "b",
        model_info=model_info,
        regularize=True,
        simplify_px=1.0,
        **FAST,
    )
    assert (
        tidy_["key"]["params"]["regularize"] is True and "regularize" not in plain["key"]["params"]
    )

    def vertices(res: dict) -> int:
        doc = json.loads(Path(res["outputs"]["vectors"]).read_text())
        return sum(len(f["geometry"]["coordinates"][0]) for f in doc["features"])

    assert tidy_["polygons"] >= plain["polygons"] > 3
    assert vertices(tidy_) < vertices(plain)
