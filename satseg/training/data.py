"""Processed dataset versions -> seeded ``tf.data`` pipelines.

Layout (written by ingest): ``<dir>/{train,val}/{images,masks}/<id>.png`` (RGB uint8 images,
0/255 masks; with a class table in the manifest, class-index masks 0..n-1 with 255 = ignore)
and ``manifest.json``. Every problem is reported before training starts, with
the file names, because a crash in the middle of an epoch would name nothing. Scaling is
``satseg.io.raster.to_model_input`` (x/255), the same as inference.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satseg import manifest
from satseg.classes import IGNORE, ModelClasses, binary_json

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
        DatasetError: the manifest is missing, not JSON or lacks dataset, tag or counts, or
            its class table is not one a model can be trained on.
    """
    try:
        doc = manifest.read_manifest(dataset_dir).doc
    except manifest.ManifestError as e:
        raise DatasetError(str(e)) from e
    _model_classes(doc)
    return doc


def _model_classes(doc: dict[str, Any]) -> ModelClasses:
    try:
        classes = ModelClasses.from_json(doc.get("classes"))
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"dataset {doc.get('dataset')!r}: bad class table: {e}") from e
    if classes.multiclass and len(classes.names) < 2:
        raise DatasetError(
            f"dataset {doc.get('dataset')!r}: a class table needs at least 2 classes, got "
            f"{list(classes.names)} (one foreground class is the binary path: no ingest.classes)"
        )
    return classes


def class_table(doc: dict[str, Any]) -> dict[str, Any]:
    """The class table JSON of a manifest (``binary_json()`` for binary and older datasets):
    what the MLflow run and the registered model carry (``CLASSES_TAG``)."""
    return dict(doc.get("classes") or binary_json())


def dataset_classes(dataset_dir: Path | str) -> ModelClasses:
    """What the masks of ``dataset_dir`` hold: binary (also without a manifest) or classes."""
    try:
        doc = manifest.read_manifest(dataset_dir).doc
    except manifest.ManifestError:
        return ModelClasses.from_json(None)
    return _model_classes(doc)


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


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation (from ``TrainConfig``); ``Augment()`` = main's flips,
    rot90, brightness and contrast only."""

    color_jitter: float = 0.0  # saturation x[1-c, 1+c], hue +-c/4, gamma exp(+-c)
    blur_prob: float = 0.0  # share of windows blurred, Gaussian sigma 0.5-1.5 px


CACHE_MAX_BYTES = 2 << 30  # decoded train split kept in RAM up to this size


def _geometric(both: Any, seeds: Any, square: bool) -> Any:
    import tensorflow as tf

    both = tf.image.stateless_random_flip_left_right(both, seeds[0])
    both = tf.image.stateless_random_flip_up_down(both, seeds[1])
    if square:
        k = tf.random.stateless_uniform([], seeds[2], 0, 4, dtype=tf.int32)
        both = tf.image.rot90(both, k)
    return both


def _blur(img: Any, seed: Any) -> Any:
    """Separable 5-tap Gaussian, sigma uniform in 0.5-1.5 px (reflect-padded)."""
    import tensorflow as tf

    sigma = tf.random.stateless_uniform([], seed, 0.5, 1.5)
    t = tf.range(-2.0, 3.0)
    k = tf.exp(-(t * t) / (2.0 * sigma * sigma))
    k = k / tf.reduce_sum(k)
    x = tf.pad(img[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    kx = tf.tile(tf.reshape(k, [1, 5, 1, 1]), [1, 1, 3, 1])
    ky = tf.tile(tf.reshape(k, [5, 1, 1, 1]), [1, 1, 3, 1])
    x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "VALID")[0]


def photometric(img: Any, seed: Any, aug: Augment) -> Any:
    """Brightness +-0.1, contrast 0.8-1.2, then ``aug``'s colour and blur (image only)."""
    import tensorflow as tf

    s = tf.random.experimental.stateless_split(seed, 7)
    img = tf.image.stateless_random_brightness(img, 0.1, s[0])
    img = tf.image.stateless_random_contrast(img, 0.8, 1.2, s[1])
    if aug.color_jitter > 0:
        c = aug.color_jitter
        img = tf.clip_by_value(img, 0.0, 1.0)
        img = tf.image.stateless_random_saturation(img, 1.0 - c, 1.0 + c, s[2])
        img = tf.image.stateless_random_hue(img, min(0.5, c / 4), s[3])
        gamma = tf.exp(tf.random.stateless_uniform([], s[4], -c, c))
        img = tf.clip_by_value(img, 0.0, 1.0) ** gamma
    if aug.blur_prob > 0:
        blurred = _blur(img, s[5])
        img = tf.cond(
            tf.random.stateless_uniform([], s[6]) < aug.blur_prob, lambda: blurred, lambda: img
        )
    return tf.clip_by_value(img, 0.0, 1.0)


def _augment_fn(square: bool, aug: Augment) -> Any:
    """(image float, target float (..., 1 or 2), seed) -> augmented pair, aligned.

    Flips and rot90 move pixels without interpolating: class indices stay exact."""
    import tensorflow as tf

    def fn(pair: tuple[Any, Any], s: Any) -> tuple[Any, Any]:
        img, target = pair
        seeds = tf.random.experimental.stateless_split(s, 4)
        both = _geometric(tf.concat([img, target], axis=-1), seeds, square)
        return photometric(both[..., :3], seeds[3], aug), both[..., 3:]

    return fn


def make_dataset(
    split: Split,
    batch_size: int,
    *,
    augment: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    aug: Augment = Augment(),
    border: tuple[float, float] | None = None,
    cache: bool = False,
    multiclass: bool = False,
) -> Any:
    """``tf.data.Dataset`` of (image float32 [0,1] (b,H,W,3), target float32 (b,H,W,1|2)).

    The target's first channel is the {0,1} mask (``multiclass``: the class index 0..n-1,
    255 = ignore, padding included: it is no class); with ``border=(w0, sigma)`` a second channel
    holds the U-Net border weights (``windows.border_weights``, read by the losses). Decoding
    runs in parallel but in a fixed order; shuffling and augmentation draw from ``seed``
    (stateless ops), so a run is repeatable. With ``cache`` the decoded uint8 split stays in
    RAM after the first pass (when it fits in ``CACHE_MAX_BYTES``). Patches are zero-padded to
    multiples of 32 (padding is background).
    """
    import tensorflow as tf

    ph, pw = padded(split.height), padded(split.width)
    channels = 2 if border else 1
    if multiclass and border:
        raise DatasetError("border weights (train.border_weight) apply to binary datasets only")
    pad = [[0, ph - split.height], [0, pw - split.width], [0, 0]]

    def weights(mask: Any) -> Any:
        from satseg.training.windows import border_weights

        assert border is not None
        return border_weights(mask[..., 0], *border)[..., None]

    def load(img_path: tf.Tensor, mask_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        img = tf.io.decode_png(tf.io.read_file(img_path), channels=3)
        img = tf.image.pad_to_bounding_box(img, 0, 0, ph, pw)
        if multiclass:  # class indices as stored; the padding is ignore
            raw = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)
            target = tf.cast(tf.pad(raw, pad, constant_values=IGNORE), tf.float32)
            return img, target
        mask = tf.cast(tf.io.decode_png(tf.io.read_file(mask_path), channels=1) > 127, tf.uint8)
        target = tf.cast(tf.image.pad_to_bounding_box(mask, 0, 0, ph, pw), tf.float32)
        if border:
            w = tf.numpy_function(weights, [target], tf.float32, stateful=False)
            target = tf.concat([target, tf.reshape(w, [ph, pw, 1])], axis=-1)
        return img, target

    def scale(img: tf.Tensor, target: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        img = tf.cast(img, tf.float32) * (1.0 / 255.0)  # == raster.to_model_input
        return tf.ensure_shape(img, [ph, pw, 3]), tf.ensure_shape(target, [ph, pw, channels])

    files = tf.data.Dataset.from_tensor_slices(
        ([str(p) for p in split.images], [str(p) for p in split.masks])
    )
    in_ram = cache and len(split) * ph * pw * (3 + 4 * channels) <= CACHE_MAX_BYTES
    if in_ram:  # decode once; shuffle the decoded patches (the buffer holds the split)
        ds = files.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True) if shuffle else ds
        ds = ds.repeat() if repeat else ds
    else:  # shuffle file names, decode every pass
        files = (
            files.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
            if shuffle
            else files
        )
        files = files.repeat() if repeat else files
        ds = files.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(scale, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            _augment_fn(ph == pw, aug), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_window_dataset(
    mosaics: list[Any],
    n: int,
    batch_size: int,
    *,
    window: int,
    seed: int = 0,
    scale_jitter: float = 0.0,
    max_nodata: float = 0.5,
    augment: bool = True,
    aug: Augment = Augment(),
    repeat: bool = False,
) -> Any:
    """Like ``make_dataset`` but ``n`` fresh random windows from ``mosaics`` per pass.

    The target holds what the mosaics' masks hold (0/1, or class indices with 255 = ignore:
    ``load_mosaics(multiclass=True)``; windows are resized nearest-neighbour). Pass k draws its windows from ``seed`` and k (``windows.sample_windows``), so a run is
    repeatable and every epoch sees different windows. The target has the weight channel
    when the mosaics carry border weights.
    """
    import numpy as np
    import tensorflow as tf

    from satseg.training.windows import cut, sample_windows

    channels = 2 if mosaics and mosaics[0].weight is not None else 1
    passes = [0]

    def gen() -> Any:
        rng = np.random.default_rng([seed, passes[0]])
        passes[0] += 1
        for win in sample_windows(
            mosaics, n, window, rng, scale_jitter=scale_jitter, max_nodata=max_nodata
        ):
            img, mask, w = cut(mosaics[win.scene], win, window)
            target = mask[..., None].astype(np.float32)
            if w is not None:
                target = np.concatenate([target, w[..., None]], axis=-1)
            yield img, target

    ds = tf.data.Dataset.from_generator(
        gen,
        output_signature=(
            tf.TensorSpec([window, window, 3], tf.uint8),
            tf.TensorSpec([window, window, channels], tf.float32),
        ),
    )
    if repeat:
        ds = ds.repeat()
    ds = ds.map(
        lambda i, t: (tf.cast(i, tf.float32) * (1.0 / 255.0), t),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            _augment_fn(True, aug), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
