"""Processed dataset versions -> seeded ``tf.data`` pipelines.

Layout (written by ingest): ``<dir>/{train,val}/{images,masks}/<id>.png`` (RGB uint8 images,
0/255 masks) and ``manifest.json``. Every problem is reported before training starts, with
the file names, because a crash in the middle of an epoch would name nothing. Scaling is
``satseg.io.raster.to_model_input`` (x/255), the same as inference.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satseg import manifest

SPLITS = ("train", "val")
PNG_SIG = b"\x89PNG\r\n\x1a\n"
STRIDE = 32  # input sizes must be multiples of the encoder's total stride


class DatasetError(ValueError):
    """A processed dataset that cannot be trained or evaluated on."""


@dataclass(frozen=True)
class Split:
    """Matched image/mask files of one split and their common size."""

    images: list[Path]
    masks: list[Path]
    height: int
    width: int

    def __len__(self) -> int:
        return len(self.images)


def read_manifest(dataset_dir: Path | str) -> dict[str, Any]:
    """The manifest document of a dataset to train on (``satseg.manifest``'s reader).

    Raises:
        DatasetError: the manifest is missing, not JSON or lacks dataset, tag or counts.
    """
    try:
        doc = manifest.read_manifest(dataset_dir).doc
    except manifest.ManifestError as e:
        raise DatasetError(str(e)) from e
    if (doc.get("classes") or {}).get("ignore_index") is not None:
        names = [c.get("name") for c in doc["classes"].get("classes", [])]
        raise DatasetError(
            f"dataset {doc.get('dataset')!r} has a class table {names}: training N classes "
            "is not built yet; train on a binary dataset (no ingest.classes)"
        )
    return doc


def png_size(path: Path) -> tuple[int, int]:
    """(height, width) from the PNG header; raises DatasetError for anything else."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != PNG_SIG or head[12:16] != b"IHDR":
        raise DatasetError(f"{path}: not a PNG file (empty, truncated or another format)")
    w, h = struct.unpack(">II", head[16:24])
    return h, w


def list_split(dataset_dir: Path | str, split: str) -> Split:
    """Matched pairs of ``split``; errors name unpaired files and mismatched sizes."""
    if split not in SPLITS:
        raise DatasetError(f"split {split!r}: choose one of {', '.join(SPLITS)}")
    root = Path(dataset_dir) / split
    img_dir, mask_dir = root / "images", root / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise DatasetError(f"{d}: missing (expected {split}/images and {split}/masks)")
    images = {p.stem: p for p in img_dir.glob("*.png")}
    masks = {p.stem: p for p in mask_dir.glob("*.png")}
    if not images:
        raise DatasetError(f"{img_dir}: no .png patches in the {split} split")
    lone_i, lone_m = sorted(images.keys() - masks.keys()), sorted(masks.keys() - images.keys())
    if lone_i or lone_m:
        raise DatasetError(
            f"{root}: unpaired patches - images without mask: {lone_i[:5]}"
            f"{'...' if len(lone_i) > 5 else ''}, masks without image: {lone_m[:5]}"
        )
    ids = sorted(images)
    sizes: dict[tuple[int, int], str] = {}
    for i in ids:
        si, sm_ = png_size(images[i]), png_size(masks[i])
        if si != sm_:
            raise DatasetError(f"{split}/{i}: image {si} and mask {sm_} differ in size")
        sizes.setdefault(si, i)
    if len(sizes) > 1:
        raise DatasetError(f"{root}: patches of different sizes {sorted(sizes)} (first: {sizes})")
    (h, w) = next(iter(sizes))
    return Split([images[i] for i in ids], [masks[i] for i in ids], h, w)


def padded(n: int) -> int:
    """Smallest multiple of STRIDE >= n."""
    return -(-n // STRIDE) * STRIDE


def make_dataset(
    split: Split,
    batch_size: int,
    *,
    augment: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
) -> Any:
    """``tf.data.Dataset`` of (image float32 [0,1] (b,H,W,3), mask float32 {0,1} (b,H,W,1)).

    Decoding runs in parallel but in a fixed order; shuffling and augmentation draw from
    ``seed`` (stateless ops), so a run is repeatable. Patches are zero-padded to multiples
    of 32 (padding is background).
    """
    import tensorflow as tf

    ph, pw = padded(split.height), padded(split.width)
    square = ph == pw

    def load(img_path: tf.Tensor, mask_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        img = tf.io.decode_png(tf.io.read_file(img_path), channels=3)
        mask = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)
        img = tf.cast(img, tf.float32) * (1.0 / 255.0)  # == raster.to_model_input
        mask = tf.cast(mask > 127, tf.float32)
        img = tf.image.pad_to_bounding_box(img, 0, 0, ph, pw)
        mask = tf.image.pad_to_bounding_box(mask, 0, 0, ph, pw)
        return img, mask

    def aug(pair: tuple[tf.Tensor, tf.Tensor], s: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        img, mask = pair
        seeds = tf.random.experimental.stateless_split(s, 6)
        both = tf.concat([img, mask], axis=-1)
        both = tf.image.stateless_random_flip_left_right(both, seeds[0])
        both = tf.image.stateless_random_flip_up_down(both, seeds[1])
        if square:
            k = tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32)
            both = tf.image.rot90(both, k)
        img, mask = both[..., :3], both[..., 3:]
        img = tf.image.stateless_random_brightness(img, 0.1, seeds[3])
        img = tf.image.stateless_random_contrast(img, 0.8, 1.2, seeds[4])
        return tf.clip_by_value(img, 0.0, 1.0), mask

    files = tf.data.Dataset.from_tensor_slices(
        ([str(p) for p in split.images], [str(p) for p in split.masks])
    )
    if shuffle:
        files = files.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        files = files.repeat()
    ds = files.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
