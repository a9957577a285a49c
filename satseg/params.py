"""Typed hyperparameters: one pydantic section per stage, each default and description once.

``include/params.yaml`` holds the committed values (DVC tracks it with every dataset
version); a user file (``SATSEG_PARAMS_FILE``) only needs the keys it changes and is merged
over it. ``load_params`` validates the result against :class:`Params`: an unknown key or an
out-of-range value is a :class:`ParamsError` naming the key path (``train.epochz``) and the
file. A test keeps ``include/params.yaml`` equal to the model defaults and the README tables
equal to :func:`markdown_table`.

Imports only pydantic and PyYAML: DAG files build their ``Param``s from these models at
parse time (``satseg.dagkit.params_for``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from satseg.vocab import SAFE_DATASET, is_tag

DEFAULT_PARAMS = Path(__file__).resolve().parent.parent / "include" / "params.yaml"

Arch = Literal["linknet", "unet", "manet"]
Loss = Literal["bce_dice", "bce_jaccard", "focal", "bce"]
Scale = Literal["percentile", "max", "none"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
Runtime = Literal["auto", "tensorflow", "onnxruntime"]
Correction = Literal["bonferroni", "bh"]
PngCompression = Literal["deflate", "none", "huffman"]
# satseg.metrics: binary iou | object_f1 | boundary_iou | dice; multi-class miou | mdice |
# pixel_accuracy | iou_<class> | dice_<class> (a class name of the dataset's table, checked there)
PROMOTION_METRIC = (
    r"^(iou|object_f1|boundary_iou|dice|miou|mdice|pixel_accuracy|(iou|dice)_[a-z][a-z0-9_]{0,31})$"
)
PromotionMetric = Annotated[str, Field(pattern=PROMOTION_METRIC)]
ClassWeighting = Literal["none", "balanced"]
Tta = Literal["none", "flips", "d4"]  # satseg.inference.tta
Promotion = Literal["auto", "approve"]
OnTimeout = Literal["reject", "promote"]
Sampler = Literal["scenes", "patches"]
Schedule = Literal["cosine", "plateau"]
TrainPrecision = Literal["auto", "fp32", "bf16"]
WeightAveraging = Literal["none", "ema"]
ARCHS: tuple[str, ...] = get_args(Arch)  # satseg.models.ARCHS
LOSSES: tuple[str, ...] = get_args(Loss)
PRECISIONS: tuple[str, ...] = get_args(Precision)  # satseg.inference.engine.PRECISIONS
RUNTIMES: tuple[str, ...] = get_args(Runtime)  # satseg.inference.runtime
CORRECTIONS: tuple[str, ...] = get_args(Correction)  # satseg.monitoring.drift.CORRECTIONS
PREDICT_RUN_OPTIONS = (
    "threshold",
    "tile",
    "overlap",
)  # predict: options a satseg_predict run takes
MAX_SWEEP = 8  # mapped training tasks of one retraining run; each is a full training run
BACKBONE_NAME = r"^[a-z][a-z0-9_]{0,63}$"  # encoder names (satseg.models.factory.backbones())


M = TypeVar("M", bound=BaseModel)


class ParamsError(ValueError):
    """A params file that does not validate: names the key path and the file."""


class Section(BaseModel):
    """Common config of every section: unknown keys are an error; values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


CLASS_NAME = r"^[a-z][a-z0-9_]{0,31}$"
UnknownLabel = Literal["error", "ignore"]


class ClassDef(Section):
    """One class of ``ingest.classes``: its name, colour and the source values mapped to it."""

    name: str = Field(pattern=CLASS_NAME, description="Class name (lower case, e.g. building)")
    color: str = Field(
        default="#ff0000", pattern=r"^#[0-9a-fA-F]{6}$", description="Display colour #rrggbb"
    )
    labels: list[str] = Field(
        default_factory=list,
        description="LabelMe labels / GeoJSON property values of this class; empty = its name",
    )
    values: list[int] = Field(
        default_factory=list, description="Mask raster values of this class (0-254)"
    )

    @field_validator("values")
    @classmethod
    def _byte_values(cls, v: list[int]) -> list[int]:
        if any(not 0 <= x <= 254 for x in v):
            raise ValueError("mask raster values must be 0..254 (255 is ignore)")
        return v


class IngestParams(Section):
    """``ingest:``: how imagery and labels are read."""

    bands: list[int] | None = Field(
        default=None,
        description="Bands to pick (1-based), e.g. [3, 2, 1]; null = first 3 (or 1 band as grey)",
    )
    scale: Scale = Field(
        default="percentile", description="uint16 -> uint8: percentile (2-98 %) | max | none"
    )
    labels: list[str] | None = Field(
        default=None, description="Label names that are foreground; null = all labels"
    )
    tolerance_px: float = Field(
        default=1.0,
        ge=0,
        description="LabelMe points may lie this far outside the image (edge clicks)",
    )
    classes: list[ClassDef] | None = Field(
        default=None,
        max_length=254,
        description="Ordered class table (name, color, labels, values); null = binary: "
        "every label in labels is one foreground class",
    )
    unlabeled: str = Field(
        default="ignore",
        description="With classes: pixels no shape covers are 'ignore' (no loss, no metric) "
        "or the named class (a background class)",
    )
    unknown_label: UnknownLabel = Field(
        default="error",
        description="With classes: a label no class names is an error (the file is "
        "quarantined with the label named) | ignore (its shape is skipped)",
    )
    label_property: str | None = Field(
        default=None,
        description="GeoJSON property holding the label; null = 'label', else 'class'",
    )
    max_megapixels: float = Field(
        default=2500,
        gt=0,
        description="Largest GeoTIFF opened (declared width x height, Mpx; also predict and "
        "monitoring), checked before decoding",
    )
    max_plain_megapixels: float = Field(
        default=100,
        gt=0,
        description="Largest PNG/JPEG opened (Mpx): decoded whole, so larger scenes must be "
        "tiled GeoTIFFs",
    )
    max_annotation_mb: float = Field(
        default=64,
        gt=0,
        le=1024,
        description="Largest LabelMe/GeoJSON file read (MB; also the upload API's JSON limit)",
    )
    max_json_depth: int = Field(
        default=64,
        ge=2,
        le=1000,
        description="Deepest bracket nesting of an annotation (checked before parsing)",
    )

    @model_validator(mode="after")
    def _class_table(self) -> IngestParams:
        if self.classes is None:
            return self
        if self.labels is not None:
            raise ValueError("set either ingest.labels (binary) or ingest.classes, not both")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"ingest.classes: duplicate class names in {names}")
        for what, key in (("label", "labels"), ("raster value", "values")):
            seen: dict[Any, str] = {}
            for c in self.classes:
                for v in getattr(c, key) or ([c.name] if key == "labels" else []):
                    if v in seen:
                        raise ValueError(
                            f"ingest.classes: {what} {v!r} maps to both {seen[v]!r} and {c.name!r}"
                        )
                    seen[v] = c.name
        if self.unlabeled != "ignore" and self.unlabeled not in names:
            raise ValueError(
                f"ingest.unlabeled must be 'ignore' or one of the classes {names}, "
                f"got {self.unlabeled!r}"
            )
        return self


class PreprocessParams(Section):
    """``preprocess:``: patch cutting and the train/val split."""

    patch_size: int = Field(default=256, ge=8, description="Patch edge (px)")
    stride: int | None = Field(
        default=None,
        ge=1,
        description="Step between patches (px; <= patch_size); null = patch_size",
    )
    positive_threshold: float = Field(
        default=0.05, ge=0, le=1, description='Foreground share above which a patch is "positive"'
    )
    oversample: int = Field(
        default=2, ge=0, description="Augmented copies (flips/rot90) of each positive train patch"
    )
    nodata_max: float = Field(
        default=0.5, ge=0, le=1, description="Drop patches with more nodata than this share"
    )
    val_fraction: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Share of patches in val (whole scenes when a dataset has several)",
    )
    seed: int = Field(default=42, description="Split seed")
    workers: int = Field(
        default=0,
        ge=0,
        description="Processes cutting a scene (forked, Linux; else 1); 0 = CPU count (max 4)",
    )
    png_compression: PngCompression = Field(
        default="deflate",
        description="Image PNGs: deflate (Sub filter + ISA-L, ~90 kB/patch) | none (stored: "
        "fastest, ~2x disk); huffman = old name of deflate",
    )

    @model_validator(mode="before")
    @classmethod
    def _stride_is_patch_size(cls, data: Any) -> Any:
        """No stride (or null): non-overlapping patches, also when a file sets only patch_size."""
        if isinstance(data, dict) and data.get("stride") is None:
            return {**data, "stride": data.get("patch_size", default_of(cls, "patch_size"))}
        return data

    @model_validator(mode="after")
    def _geometry(self) -> PreprocessParams:
        if self.stride is not None and self.stride > self.patch_size:
            raise ValueError(f"stride={self.stride} must be <= patch_size={self.patch_size}")
        return self


class TrainParams(Section):
    """``train:``: one training run (also the DAG's trigger form and ``satseg train``)."""

    arch: Arch = Field(
        default="linknet",
        description="linknet | unet | manet (LinkNet: UNet's IoU in 30 min, faster inference)",
    )
    backbone: str = Field(
        default="resnet18",
        min_length=1,
        max_length=64,
        pattern=BACKBONE_NAME,
        description="Any segmentation-models encoder (satseg.models.factory.backbones())",
    )
    epochs: int = Field(
        default=40,
        ge=1,
        le=1000,
        description="Upper bound: early stopping or the time budget usually ends sooner",
    )
    batch_size: int = Field(default=8, ge=1, le=1024, description="Patches per training step")
    learning_rate: float = Field(
        default=0.001,
        gt=0,
        le=1,
        description="Peak Adam(W) rate (see schedule: cosine decay or halved on plateau)",
    )
    loss: Loss = Field(
        default="bce_dice",
        description="bce_dice | bce_jaccard | focal | bce; on a multi-class dataset each is its "
        "softmax twin (ignore 255 masked out): ce_dice | ce_jaccard | categorical focal | ce",
    )
    patience: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Early stopping on val IoU (best epoch's weights are kept)",
    )
    seed: int = Field(
        default=42, ge=0, le=2**32 - 1, description="Shuffling, augmentation, initial weights"
    )
    augment: bool = Field(
        default=True,
        description="Flips, rot90, brightness/contrast (+ colour, blur, zoom below) on train",
    )
    steps_per_epoch: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Batches per epoch; null = one pass over the train split",
    )
    time_budget_min: float | None = Field(
        default=30,
        gt=0,
        le=600,
        description="Stop after the epoch that crosses it (minutes, at most 10 h: the train "
        "task's execution_timeout is 12 h; null = no budget)",
    )
    promotion_metric: PromotionMetric = Field(
        default="iou",
        description="Val metric that picks the best candidate, tunes threshold and min area, "
        "and must beat the champion: iou | object_f1 | boundary_iou | dice; multi-class: "
        "miou | mdice | pixel_accuracy | iou_<class> | dice_<class> (iou/dice = miou/mdice)",
    )
    object_f1_tolerance: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Not promoted when object F1 is more than this below the champion's",
    )
    sampler: Sampler = Field(
        default="scenes",
        description="scenes: fresh random windows from the whole train scenes every epoch "
        "(RandomGeoSampler style) | patches: the pre-cut patches",
    )
    window: int = Field(
        default=256,
        ge=64,
        le=1024,
        multiple_of=32,
        description="Training window edge with sampler: scenes (px, multiple of 32)",
    )
    scale_jitter: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="sampler scenes: windows cut at 1/(1+s) to (1+s) x window, resized (zoom)",
    )
    color_jitter: float = Field(
        default=0.0,
        ge=0,
        le=0.5,
        description="Saturation, hue and gamma jitter on top of brightness/contrast (0 = off)",
    )
    blur_prob: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of training windows Gaussian-blurred (σ 0.5-1.5 px)",
    )
    border_weight: float = Field(
        default=0.0,
        ge=0,
        le=50,
        description="U-Net border weight w0 on the gaps between buildings in the BCE (0 = off)",
    )
    border_sigma: float = Field(
        default=5.0, gt=0, le=50, description="Width σ of the border weight (px)"
    )
    schedule: Schedule = Field(
        default="plateau",
        description="cosine: warmup, then cosine decay over the time budget (or epochs) | "
        "plateau: halve after patience//2 epochs without val_loss progress",
    )
    weight_decay: float = Field(
        default=0.0, ge=0, le=0.1, description="AdamW decoupled weight decay (0 = plain Adam)"
    )
    precision: TrainPrecision = Field(
        default="auto",
        description="auto (mixed bf16 on CPUs with AVX512_BF16/AMX, else fp32) | fp32 | bf16",
    )
    weight_averaging: WeightAveraging = Field(
        default="none",
        description="ema: also keep an exponential moving average of the weights; the final "
        "model is the average or the best checkpoint, whichever scores better on val",
    )
    ema_momentum: float = Field(
        default=0.99, gt=0, lt=1, description="weight_averaging ema: decay per training step"
    )
    class_weighting: ClassWeighting = Field(
        default="none",
        description="Multi-class cross-entropy weights: none | balanced (n_px / (n_classes x "
        "class px) of the train split's class_pixels, capped at 10)",
    )
    class_weights: dict[str, float] | None = Field(
        default=None,
        description="Multi-class: per-class cross-entropy weight by class name, over "
        "class_weighting's (unnamed classes keep theirs); null = none",
    )

    @field_validator("class_weights")
    @classmethod
    def _weights(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None and any(not (0 <= w <= 100) for w in v.values()):
            raise ValueError("class weights must be in 0..100")
        return v


class PredictParams(Section):
    """``predict:``: sliding-window inference and post-processing."""

    tile: int = Field(
        default=512,
        ge=32,
        description="Sliding-window tile edge (px; multiple of 32); 512: 1.36x less model "
        "work than 256 at 64 px overlap, same IoU (measured)",
    )
    overlap: int = Field(
        default=32,
        ge=0,
        description="Px shared by neighbouring tiles, blended with a sin⁴ window (<= tile/2); "
        "32: 1.1x faster than 64 end to end, same IoU and seams (measured)",
    )
    batch_size: int = Field(
        default=2, ge=1, description="Tiles per model call (2 x 512² = 8 x 256² pixels)"
    )
    column_band: int = Field(
        default=6144,
        ge=0,
        description="Scenes wider than this (px) stream in column bands at most this wide, "
        "so memory stays flat in the width; 0 = always whole rows",
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Probability -> mask; null = the model's, tuned on val (0.5 if it has none)",
    )
    min_area_px: int | None = Field(
        default=None,
        ge=0,
        description="Drop mask components smaller than this (px, 4-connected); null = the "
        "model's, tuned on val (16 if it has none)",
    )
    opening_px: int = Field(
        default=3, ge=0, description="Morphological opening (disk diameter, px); 0/1 = off"
    )
    precision: Precision = Field(
        default="auto",
        description="auto (the fastest this CPU and the model's verified artifacts allow) | "
        "fp32 | bf16 (TensorFlow) | int8 (ONNX Runtime if verified, else TFLite)",
    )
    runtime: Runtime = Field(
        default="auto",
        description="auto | tensorflow | onnxruntime (the ONNX made and verified at "
        "registration; TensorFlow when missing)",
    )
    scale: Scale | None = Field(
        default=None, description="uint16 -> uint8 stretch; null = ingest.scale (what training saw)"
    )
    bands: tuple[int, ...] | None = Field(
        default=None, description="1-based bands; null = ingest.bands (what training saw)"
    )
    tta: Tta = Field(
        default="none",
        description="Test-time augmentation, probabilities averaged: none | flips (4 views) | "
        "d4 (8: flips and rot90)",
    )
    regularize: bool = Field(
        default=False,
        description="Square building footprints (buildingregulariser): edges at right angles",
    )
    simplify_px: float = Field(
        default=0,
        ge=0,
        le=100,
        description="Topology-preserving polygon simplification tolerance (px); 0 = off",
    )

    @model_validator(mode="after")
    def _overlap(self) -> PredictParams:
        if self.overlap > self.tile // 2:
            raise ValueError(f"overlap={self.overlap} must be <= tile/2 = {self.tile // 2}")
        if self.runtime == "onnxruntime" and self.precision == "bf16":
            raise ValueError("precision=bf16 runs on TensorFlow only (runtime: tensorflow or auto)")
        return self


class MonitorParams(Section):
    """``monitor:``: data and concept drift checks."""

    ks_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Family-wise false-alarm rate of the per-feature KS tests",
    )
    correction: Correction = Field(
        default="bonferroni",
        description="Multiple-testing control: bonferroni | bh (Benjamini-Hochberg)",
    )
    drift_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Data drift when more than this share of features drifted "
        "(0.05 of 22 = at least 2 agreeing)",
    )
    iou_drop: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Concept drift when champion IoU (multi-class: any class's IoU) falls by more "
        "than this",
    )
    sample_patches: int = Field(
        default=200, ge=1, description="Feature windows sampled from current imagery per check"
    )
    min_samples: int = Field(
        default=8, ge=1, description="Fewer current windows than this: wait for more imagery"
    )
    seed: int = Field(default=0, description="Window sampling seed (same scene -> same windows)")


class AnnotateParams(Section):
    """``annotate:``: labelling tasks from the champion's least certain windows."""

    budget: int = Field(
        default=20,
        ge=0,
        le=10000,
        description="Tasks exported per run (the most uncertain windows first); 0 = off",
    )
    window_px: int = Field(
        default=256, ge=32, le=4096, description="Edge of one task's image crop (px)"
    )
    min_uncertainty: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Skip windows less uncertain than this (mean binary entropy of the "
        "probability, 0-1; or the TTA variance COG where one exists)",
    )
    min_valid: float = Field(
        default=0.5, ge=0, le=1, description="Skip windows with less valid (non-nodata) share"
    )


class ApiParams(Section):
    """``api:``: the REST API's health endpoint."""

    min_free_disk_mb: int = Field(
        default=1024,
        ge=0,
        description="/satseg/health reports an error below this much free space under SATSEG_HOME",
    )
    health_timeout_s: float = Field(
        default=3, gt=0, description="Per-dependency timeout of /satseg/health (MLflow, Redis)"
    )


class Params(Section):
    """The whole params file: one typed section per stage."""

    ingest: IngestParams = Field(default_factory=lambda: IngestParams())
    preprocess: PreprocessParams = Field(default_factory=lambda: PreprocessParams())
    train: TrainParams = Field(default_factory=lambda: TrainParams())
    predict: PredictParams = Field(default_factory=lambda: PredictParams())
    monitor: MonitorParams = Field(default_factory=lambda: MonitorParams())
    annotate: AnnotateParams = Field(default_factory=lambda: AnnotateParams())
    api: ApiParams = Field(default_factory=lambda: ApiParams())

    def resolved_predict(self) -> PredictParams:
        """``predict:`` with ``bands``/``scale`` filled from ``ingest:`` (what training saw)."""
        p = self.predict
        bands = p.bands if p.bands is not None else self.ingest.bands
        return p.model_copy(
            update={
                "bands": tuple(bands) if bands is not None else None,
                "scale": p.scale or self.ingest.scale,
            }
        )


class RetrainRun(BaseModel):
    """Options of one retraining run besides ``train:`` (DAG params, REST request)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, description="Dataset name; empty = newest one")
    dataset_version: str | None = Field(
        default=None, description="Version tag, e.g. demo-v3; empty = latest"
    )
    force: bool = Field(default=False, description="Train even without new data")
    sweep: dict[str, Any] | None = Field(
        default=None,
        description='Grid of options, e.g. {"arch": ["linknet", "unet"]} '
        f"(train options only, at most {MAX_SWEEP} combinations)",
    )
    promotion: Promotion = Field(
        default="auto",
        description="auto: a challenger that beats the champion is promoted | approve: a "
        "person approves it first (Required Actions in the Airflow UI, or the REST API)",
    )
    approval_timeout_h: float = Field(
        default=24,
        gt=0,
        le=24 * 30,
        description="With promotion=approve: hours to wait for an answer",
    )
    on_timeout: OnTimeout = Field(
        default="reject",
        description="With promotion=approve and no answer in time: reject (keep the champion) "
        "| promote",
    )

    @field_validator("dataset")
    @classmethod
    def _dataset_name(cls, v: str | None) -> str | None:
        if v and not SAFE_DATASET.match(v):
            raise ValueError(f"{v[:80]!r} is not a dataset name (letters, digits, '_', '-')")
        return v

    @field_validator("dataset_version")
    @classmethod
    def _version_tag(cls, v: str | None) -> str | None:
        if v and not is_tag(v):
            raise ValueError(f"{v[:80]!r} is not a version tag (<dataset>-v<n>)")
        return v

    @field_validator("sweep")
    @classmethod
    def _bounded_sweep(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_sweep(v) if v else v


def check_sweep(sweep: dict[str, Any]) -> dict[str, list[Any]]:
    """``sweep`` with each option's values as a list: ``train:`` options only, each value
    valid for its option, at most :data:`MAX_SWEEP` combinations (checked before expanding)."""
    unknown = [str(k)[:40] for k in sweep if k not in TrainParams.model_fields]
    if unknown:
        raise ValueError(f"sweep over unknown option(s): {', '.join(unknown)}")
    over = overrides_model(TrainParams)
    out: dict[str, list[Any]] = {}
    runs = 1
    for key, v in sweep.items():
        values = v if isinstance(v, list) else [v]
        runs *= len(values)
        if not values:
            raise ValueError(f"sweep option {key!r} has no values")
        if runs > MAX_SWEEP:
            raise ValueError(f"the sweep gives more than {MAX_SWEEP} runs (at most {MAX_SWEEP})")
        for value in values:
            if value is None:
                raise ValueError(f"sweep option {key!r}: null is not a value")
            build(over, {key: value}, f"sweep.{key}")
        out[key] = values
    return out


def default_of(section: type[BaseModel], name: str) -> Any:
    """The one default of ``section.name`` (for objects built outside the models)."""
    return section.model_fields[name].get_default(call_default_factory=True)


def validate(data: dict[str, Any], source: str = "<params>") -> Params:
    """``data`` as :class:`Params`; a :class:`ParamsError` names each bad key and ``source``."""
    return build(Params, data, source)


def build(model: type[M], data: dict[str, Any], source: str) -> M:
    """``model`` from ``data``, or a :class:`ParamsError` naming each bad key and ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ParamsError(f"{source}: " + "; ".join(_problem(err) for err in e.errors())) from e


def _problem(err: Any) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    got, ctx = err.get("input"), err.get("ctx") or {}
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key"
    if kind == "literal_error":
        return f"{key} {_short(got)}: choose one of {ctx.get('expected')}"
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        op, name = bounds[kind]
        return f"{key} must be {op} {ctx.get(name)}, got {_short(got)}"
    return f"{key}: {err['msg']} (got {_short(got)})"


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut: a request may carry a 5000-value sweep."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """The params file at ``path`` merged over the committed defaults, validated.

    Cached per (path, mtime), so a process reads each file once but sees later edits.
    """
    p = Path(path).expanduser().resolve()
    return _load(p, p.stat().st_mtime_ns, DEFAULT_PARAMS.stat().st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int, defaults_mtime_ns: int) -> Params:
    data = _read(DEFAULT_PARAMS)
    if path != DEFAULT_PARAMS.resolve():
        data = deep_merge(data, _read(path))
    return validate(data, str(path))


def _read(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, merging nested mappings key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def overrides_model(section: type[Section], name: str | None = None) -> type[BaseModel]:
    """A model of optional overrides of ``section``: same names, types, ranges, descriptions.

    ``None`` (or an absent key) leaves the params file's value; unknown keys are an error.
    """
    fields: dict[str, Any] = {}
    for key, info in section.model_fields.items():
        inner: Any = (
            Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        )
        fields[key] = (inner | None, Field(default=None, description=info.description))
    return create_model(  # type: ignore[call-overload,no-any-return]
        name or f"{section.__name__}Overrides",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def markdown_table(
    model: type[BaseModel],
    *,
    key: Callable[[str], str] = str,
    none: str = "null",
    root: Path | None = None,
) -> str:
    """README table of ``model``'s fields: key, default, description (a test keeps it equal).

    ``key`` shapes the key column (``SATSEG_HOME`` for settings); ``none`` shows a ``None``
    default; a ``Path`` default under ``root`` is shown relative to it.
    """
    rows = ["| key | default | description |", "|---|---|---|"]
    for name, info in model.model_fields.items():
        default = default_of(model, name)
        if default is None:
            shown = none
        elif isinstance(default, Path):
            rel = root is not None and default.is_relative_to(root)
            shown = f"`{default.relative_to(root) if rel and root else default}`"
        else:
            shown = f"`{default if isinstance(default, str) else json.dumps(default)}`"
        desc = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{key(name)}` | {shown} | {desc} |")
    return "\n".join(rows)


SECTIONS: dict[str, type[Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Params.model_fields.items()
}
