"""The tf.data pipeline reads the ingest layout exactly as inference scales it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from satseg.io.raster import read_plain_image, to_model_input
from satseg.training.data import DatasetError, list_split, make_dataset, read_manifest


def test_pipeline_matches_inference_scaling(tiny_dataset: Path) -> None:
    sp = list_split(tiny_dataset, "val")
    x, y = next(iter(make_dataset(sp, batch_size=len(sp))))
    for i, img_path in enumerate(sp.images):
        expected = to_model_input(read_plain_image(img_path))
        np.testing.assert_allclose(np.asarray(x[i]), expected, atol=1e-6)
    raw_mask = read_plain_image(sp.masks[0])[..., 0]
    np.testing.assert_array_equal(np.asarray(y[0])[..., 0], (raw_mask > 127).astype(np.float32))
    assert set(np.unique(np.asarray(y))) <= {0.0, 1.0}


def test_augmentation_is_seeded_and_keeps_masks_aligned(tiny_dataset: Path) -> None:
    sp = list_split(tiny_dataset, "train")

    def batches(seed: int) -> list[np.ndarray]:
        ds = make_dataset(sp, 4, augment=True, shuffle=True, seed=seed)
        return [np.asarray(x) for x, _ in ds]

    a, b, c = batches(1), batches(1), batches(2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))
    # Geometry moves image and mask together: roofs (bright) stay under the mask.
    for x, y in make_dataset(sp, 8, augment=True, shuffle=True, seed=3):
        x, y = np.asarray(x), np.asarray(y)[..., 0] > 0.5
        assert x.min() >= 0.0 and x.max() <= 1.0
        grey = x.mean(-1)
        assert grey[y].mean() > grey[~y].mean() + 0.1


def test_non_multiple_of_32_is_padded_with_background(tmp_path: Path) -> None:
    from satseg.training.sample import write_sample_dataset

    d = write_sample_dataset(tmp_path / "odd", n_train=2, n_val=2, size=40)
    x, y = next(iter(make_dataset(list_split(d, "val"), 2)))
    assert x.shape[1:] == (64, 64, 3) and y.shape[1:] == (64, 64, 1)
    assert float(np.asarray(y)[:, 40:].max()) == 0.0


def _broken(tiny: Path, tmp_path: Path, how: str) -> Path:
    d = tmp_path / f"broken_{how}"
    shutil.copytree(tiny, d)
    masks = sorted((d / "train" / "masks").glob("*.png"))
    if how == "no_manifest":
        (d / "manifest.json").unlink()
    elif how == "bad_manifest":
        (d / "manifest.json").write_text(json.dumps({"dataset": "x"}))
    elif how == "missing_mask":
        masks[0].unlink()
    elif how == "corrupt_png":
        masks[1].write_bytes(b"not a png at all, just text")
    elif how == "no_val":
        shutil.rmtree(d / "val")
    elif how == "empty_split":
        for p in (d / "val" / "images").glob("*.png"):
            p.unlink()
    return d


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("no_manifest", "no manifest.json"),
        ("bad_manifest", "missing key(s) tag, counts"),
        ("missing_mask", "images without mask"),
        ("corrupt_png", "not a PNG file"),
        ("no_val", "val/images: missing"),
        ("empty_split", "no .png patches in the val split"),
    ],
)
def test_bad_datasets_fail_clearly_and_are_left_untouched(
    tiny_dataset: Path, tmp_path: Path, how: str, message: str
) -> None:
    d = _broken(tiny_dataset, tmp_path, how)
    before = sorted(p.relative_to(d) for p in d.rglob("*"))
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(d)
        list_split(d, "train")
        list_split(d, "val")
    assert sorted(p.relative_to(d) for p in d.rglob("*")) == before
