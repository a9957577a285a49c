"""satseg.metrics against hand-built masks whose scores are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from satseg import metrics as m


def _squares(shape: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    out = np.zeros(shape, bool)
    for y0, x0, y1, x1 in boxes:
        out[y0:y1, x0:x1] = True
    return out


A, B, C = (10, 10, 30, 30), (10, 60, 30, 80), (60, 10, 80, 30)  # three 20x20 squares


def test_pixel_scores_by_hand() -> None:
    truth = _squares((100, 100), A)  # 400 px
    pred = _squares((100, 100), (10, 20, 30, 40))  # half overlaps: 200 tp, 200 fp, 200 fn
    assert m.pixel_counts(truth, pred) == (200, 200, 200)
    s = m.pixel_scores(200, 200, 200)
    assert s == {"iou": 1 / 3, "dice": 0.5, "precision": 0.5, "recall": 0.5}
    assert m.pixel_scores(0, 0, 0) == {"iou": 1.0, "dice": 1.0, "precision": 1.0, "recall": 1.0}


def test_one_matched_one_missed_one_false_alarm() -> None:
    truth = _squares((100, 100), A, B)
    pred = _squares((100, 100), A, C)  # A found, B missed, C is a false alarm
    assert m.object_counts(truth, pred) == (1, 1, 1)
    s = m.score_masks(truth, pred)
    assert (s["object_precision"], s["object_recall"], s["object_f1"]) == (0.5, 0.5, 0.5)
    assert (s["object_tp"], s["object_fp"], s["object_fn"]) == (1, 1, 1)
    only_missed = m.score_masks(truth, _squares((100, 100), A))
    # P = 1/1, R = 1/2 -> F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    assert only_missed["object_f1"] == pytest.approx(2 / 3)
    assert only_missed["object_precision"] == 1.0 and only_missed["object_recall"] == 0.5


def test_match_needs_iou_of_one_half_and_is_one_to_one() -> None:
    truth = _squares((100, 100), A)
    half = _squares((100, 100), (10, 10, 30, 20))  # 200 of 400 px inside: IoU exactly 0.5
    less = _squares((100, 100), (10, 10, 30, 19))  # 180 / 400 = 0.45
    assert m.object_counts(truth, half) == (1, 0, 0)
    assert m.object_counts(truth, less) == (0, 1, 1)
    # one prediction covering two buildings (plus the street between) matches neither
    two = _squares((100, 100), (10, 10, 30, 30), (10, 34, 30, 54))
    block = _squares((100, 100), (10, 10, 30, 54))
    assert m.object_counts(two, block) == (0, 1, 2)
    # a building split into two halves: each half has IoU 0.5, only one may match it
    split = _squares((100, 100), (10, 10, 30, 20), (10, 21, 30, 31))
    tp, fp, fn = m.object_counts(truth, split)
    assert (tp, fp, fn) == (1, 1, 0)


def test_objects_are_four_connected() -> None:
    diag = np.zeros((10, 10), bool)
    diag[2, 2] = diag[3, 3] = True  # touching at a corner only: two objects
    assert m.components(diag)[0] == 2


def test_boundary_band_and_iou_by_hand() -> None:
    assert m.boundary_width((100, 100)) == 3  # round(0.02 * 141.4)
    assert m.boundary_width((100, 100), 0.05) == 7
    truth = _squares((100, 100), A)
    band = m.boundary(truth, 3)
    assert band.sum() == 20 * 20 - 14 * 14  # a 3 px ring inside the 20 px square
    assert m.boundary_iou(truth, truth) == 1.0
    assert m.boundary_iou(truth, _squares((100, 100), C)) == 0.0
    assert m.boundary_iou(np.zeros((8, 8)), np.zeros((8, 8))) == 1.0


def test_boundary_matches_a_distance_transform() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(0)
    truth = ndimage.binary_opening(rng.random((64, 80)) > 0.4, iterations=2)
    pred = ndimage.binary_opening(rng.random((64, 80)) > 0.4, iterations=2)
    d = m.boundary_width(truth.shape)

    def band(x: np.ndarray) -> np.ndarray:  # chessboard distance to background (border = bg)
        dist = ndimage.distance_transform_cdt(np.pad(x, 1), metric="chessboard")[1:-1, 1:-1]
        return x & (dist <= d)

    inter = np.sum(band(truth) & band(pred))
    union = np.sum(band(truth) | band(pred))
    assert m.boundary_counts(truth, pred) == (inter, union)
    # boundary IoU is harsher on a one-pixel shift than pixel IoU
    big = _squares((100, 100), (10, 10, 50, 50))
    shifted = np.roll(big, 1, axis=1)
    assert m.score_masks(big, shifted)["iou"] == pytest.approx(1560 / 1640)
    assert m.boundary_iou(big, shifted) < 0.9


def test_scorer_sums_counts_over_patches() -> None:
    t1, p1 = _squares((100, 100), A, B), _squares((100, 100), A, C)  # 1 tp, 1 fp, 1 fn
    t2, p2 = _squares((100, 100), A), _squares((100, 100), A)  # 1 tp
    s = m.Scorer()
    s.update(t1, p1)
    s.update(t2, p2)
    s.update(m.Truth.of(t1), p1)  # a prepared truth scores the same
    r = s.result()
    assert (r["object_tp"], r["object_fp"], r["object_fn"]) == (3, 2, 2)
    assert r["object_f1"] == pytest.approx(6 / 10)
    stacked = m.score_masks(np.stack([t1, t2]), np.stack([p1, p2]))
    # pixels: 800 tp, 400 fp, 400 fn; objects: 2 tp, 1 fp, 1 fn
    assert stacked["object_f1"] == pytest.approx(2 / 3) and stacked["iou"] == pytest.approx(
        800 / 1600
    )


def test_bad_inputs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        m.score_masks(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="2-D"):
        m.pixel_counts(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="dilation_ratio"):
        m.boundary_width((10, 10), 0.0)


def test_class_scores_per_class_and_mean_ignore_excluded() -> None:
    from satseg.metrics import ClassScorer, class_scores

    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 2]], np.uint8)
    s = class_scores(truth, pred, ("a", "b", "c"))
    # a: tp 1, fp 1 (row 2 col 1), fn 1 -> 1/3 ; b: tp 2, fp 1 -> 2/3 ; c: tp 1, fn 1 -> 1/2
    assert s["iou_a"] == pytest.approx(1 / 3)
    assert s["iou_b"] == pytest.approx(2 / 3)
    assert s["iou_c"] == pytest.approx(1 / 2)
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)  # ignored pixels are not counted
    acc = ClassScorer(("a", "b", "c"))
    acc.update(truth[:1], pred[:1])
    acc.update(truth[1:], pred[1:])
    assert acc.result() == s


def test_class_scores_absent_class_left_out_of_mean_and_bad_index_refused() -> None:
    from satseg.metrics import class_scores

    t = np.zeros((4, 4), np.uint8)
    s = class_scores(t, t, ("land", "water"))
    assert s["miou"] == 1.0 and s["iou_water"] == 1.0
    with pytest.raises(ValueError, match="class indices"):
        class_scores(t, np.full((4, 4), 3, np.uint8), ("land", "water"))
