"""The patch PNG encoder: every decoder the product uses reads back exactly the pixels written."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from satseg.preprocess.png import PNG_MODES, encode_png, normalise_mode, write_png


def _samples() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:256, 0:256]
    smooth = np.stack([xx, yy, (xx + yy) // 2], -1).astype(np.uint8)
    return {
        "noise": rng.integers(0, 256, (256, 256, 3), dtype=np.uint8),
        "smooth": smooth,
        "wraps": np.tile(np.array([255, 0, 255, 0], np.uint8)[None, :, None], (3, 1, 3)),
        "odd_shape": rng.integers(0, 256, (37, 5, 3), dtype=np.uint8),
        "one_pixel": np.array([[[1, 2, 3]]], np.uint8),
        "grey": rng.integers(0, 256, (64, 48), dtype=np.uint8),
        "mask": (rng.random((256, 256)) > 0.7).astype(np.uint8) * 255,
        "empty_mask": np.zeros((256, 256), np.uint8),
    }


@pytest.mark.parametrize("mode", PNG_MODES)
@pytest.mark.parametrize("name", list(_samples()))
def test_roundtrip_opencv_and_pillow(name: str, mode: str) -> None:
    px = _samples()[name]
    data = encode_png(px, mode)
    cv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if px.ndim == 3:
        cv = cv2.cvtColor(cv, cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(cv, px)
    import io

    with Image.open(io.BytesIO(data)) as im:
        im.load()  # verifies every chunk CRC and the zlib stream checksum
        assert im.mode == ("RGB" if px.ndim == 3 else "L")
        np.testing.assert_array_equal(np.asarray(im), px)


def test_tensorflow_decodes_what_training_reads(tmp_path: Path) -> None:
    """Training reads patches with ``tf.io.decode_png``: same pixels, RGB order."""
    import tensorflow as tf

    rgb, mask = _samples()["smooth"], _samples()["mask"]
    write_png(tmp_path / "i.png", rgb)
    write_png(tmp_path / "m.png", mask)
    got = tf.io.decode_png(tf.io.read_file(str(tmp_path / "i.png")), channels=3).numpy()
    np.testing.assert_array_equal(got, rgb)
    got_m = tf.io.decode_png(tf.io.read_file(str(tmp_path / "m.png")), channels=1).numpy()
    np.testing.assert_array_equal(got_m[..., 0], mask)


def test_bgr_input_is_stored_as_rgb() -> None:
    rgb = _samples()["noise"]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    assert encode_png(bgr, bgr=True) == encode_png(rgb)


def test_non_contiguous_views_encode_like_copies() -> None:
    strip = _samples()["noise"]
    view = strip[:, 100:200]
    assert encode_png(view) == encode_png(np.ascontiguousarray(view))


def test_deflate_is_smaller_than_stored_and_opencv_default() -> None:
    """On imagery-like content the default mode must not cost disk against OpenCV's PNG."""
    yy, xx = np.mgrid[0:256, 0:256]
    rng = np.random.default_rng(1)
    img = np.clip(
        np.stack([xx * 0.5, yy * 0.4, (xx + yy) * 0.2], -1) + rng.normal(0, 6, (256, 256, 3)),
        0,
        255,
    ).astype(np.uint8)
    deflate, stored = len(encode_png(img, "deflate")), len(encode_png(img, "none"))
    ok, cv_default = cv2.imencode(".png", img[..., ::-1])
    assert ok
    assert deflate < stored
    assert deflate <= len(cv_default) * 1.05
    assert stored >= img.size  # stored really is uncompressed


def test_write_png_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    write_png(path, _samples()["noise"])
    write_png(path, _samples()["one_pixel"])
    assert path.read_bytes() == encode_png(_samples()["one_pixel"])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), np.uint16),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4,), np.uint8),
    ],
)
def test_rejects_what_it_cannot_encode(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="encode_png"):
        encode_png(bad)


def test_modes() -> None:
    assert normalise_mode("huffman") == "deflate"  # params files from before this encoder
    assert normalise_mode("none") == "none"
    with pytest.raises(ValueError, match="png_compression"):
        normalise_mode("zstd")
