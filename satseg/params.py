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
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

DEFAULT_PARAMS = Path(__file__).resolve().parent.parent / "include" / "params.yaml"

Arch = Literal["linknet", "unet", "manet"]
Loss = Literal["bce_dice", "bce_jaccard", "focal", "bce"]
Scale = Literal["percentile", "max", "none"]
Precision = Literal["auto", "fp32", "bf16", "int8"]
Correction = Literal["bonferroni", "bh"]
PngCompression = Literal["deflate", "none", "huffman"]
ARCHS: tuple[str, ...] = get_args(Arch)  # satseg.models.ARCHS
LOSSES: tuple[str, ...] = get_args(Loss)


M = TypeVar("M", bound=BaseModel)


class ParamsError(ValueError):
    """A params file that does not validate: names the key path and the file."""


class Section(BaseModel):
    """Common config of every section: unknown keys are an error; values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class IngestParams(Section):
    """``ingest:``: how imagery and labels are read."""

    bands: list[int] | None = Field(
        None,
        description="Bands to pick (1-based), e.g. [3, 2, 1]; null = first 3 (or 1 band as grey)",
    )
    scale: Scale = Field(
        "percentile", description="uint16 -> uint8: percentile (2-98 %) | max | none"
    )
    labels: list[str] | None = Field(
        None, description="Label names that are foreground; null = all labels"
    )
    tolerance_px: float = Field(
        1.0, ge=0, description="LabelMe points may lie this far outside the image (edge clicks)"
    )


class PreprocessParams(Section):
    """``preprocess:``: patch cutting and the train/val split."""

    patch_size: int = Field(256, ge=8, description="Patch edge (px)")
    stride: int = Field(256, ge=1, description="Step between patches (px; <= patch_size)")
    positive_threshold: float = Field(
        0.05, ge=0, le=1, description='Foreground share above which a patch is "positive"'
    )
    oversample: int = Field(
        2, ge=0, description="Augmented copies (flips/rot90) of each positive train patch"
    )
    nodata_max: float = Field(
        0.5, ge=0, le=1, description="Drop patches with more nodata than this share"
    )
    val_fraction: float = Field(
        0.2,
        ge=0,
        lt=1,
        description="Share of patches in val (whole scenes when a dataset has several)",
    )
    seed: int = Field(42, description="Split seed")
    workers: int = Field(
        0,
        ge=0,
        description="Processes cutting a scene (forked, Linux; else 1); 0 = CPU count (max 4)",
    )
    png_compression: PngCompression = Field(
        "deflate",
        description="Image PNGs: deflate (Sub filter + ISA-L, ~90 kB/patch) | none (stored: "
        "fastest, ~2x disk); huffman = old name of deflate",
    )

    @model_validator(mode="after")
    def _geometry(self) -> PreprocessParams:
        if self.stride > self.patch_size:
            raise ValueError(f"stride={self.stride} must be <= patch_size={self.patch_size}")
        return self


class TrainParams(Section):
    """``train:``: one training run (also the DAG's trigger form and ``satseg train``)."""

    arch: Arch = Field(
        "linknet",
        description="linknet | unet | manet (LinkNet: UNet's IoU in 30 min, faster inference)",
    )
    backbone: str = Field(
        "resnet18",
        min_length=1,
        description="Any segmentation-models encoder (satseg.models.factory.backbones())",
    )
    epochs: int = Field(
        40,
        ge=1,
        le=1000,
        description="Upper bound: early stopping or the time budget usually ends sooner",
    )
    batch_size: int = Field(8, ge=1, description="Patches per training step")
    learning_rate: float = Field(
        0.001, gt=0, description="Adam; halved after patience//2 epochs without val_loss progress"
    )
    loss: Loss = Field("bce_dice", description="bce_dice | bce_jaccard | focal | bce")
    patience: int = Field(
        5, ge=1, description="Early stopping on val IoU (best epoch's weights are kept)"
    )
    seed: int = Field(42, description="Shuffling, augmentation, initial weights")
    augment: bool = Field(
        True, description="Flips, rot90, brightness/contrast on the train split"
    )
    steps_per_epoch: int | None = Field(
        None, ge=1, description="Batches per epoch; null = one pass over the train split"
    )
    time_budget_min: float | None = Field(
        30,
        gt=0,
        description="Stop after the epoch that crosses it (minutes; null = no budget)",
    )


class PredictParams(Section):
    """``predict:``: sliding-window inference and post-processing."""

    tile: int = Field(256, ge=32, description="Sliding-window tile edge (px; multiple of 32)")
    overlap: int = Field(
        64,
        ge=0,
        description="Px shared by neighbouring tiles, blended with a sin⁴ window (<= tile/2)",
    )
    batch_size: int = Field(8, ge=1, description="Tiles per model call")
    threshold: float = Field(0.5, gt=0, lt=1, description="Probability -> mask")
    min_area_px: int = Field(
        16, ge=0, description="Drop mask components smaller than this (px, 4-connected)"
    )
    opening_px: int = Field(
        3, ge=0, description="Morphological opening (disk diameter, px); 0/1 = off"
    )
    precision: Precision = Field(
        "auto",
        description="auto (bf16 on CPUs with AVX512_BF16/AMX, else fp32) | fp32 | bf16 | "
        "int8 (TFLite)",
    )
    scale: Scale | None = Field(
        None, description="uint16 -> uint8 stretch; null = ingest.scale (what training saw)"
    )
    bands: tuple[int, ...] | None = Field(
        None, description="1-based bands; null = ingest.bands (what training saw)"
    )

    @model_validator(mode="after")
    def _overlap(self) -> PredictParams:
        if self.overlap > self.tile // 2:
            raise ValueError(f"overlap={self.overlap} must be <= tile/2 = {self.tile // 2}")
        return self


class MonitorParams(Section):
    """``monitor:``: data and concept drift checks."""

    ks_alpha: float = Field(
        0.05, gt=0, lt=1, description="Family-wise false-alarm rate of the per-feature KS tests"
    )
    correction: Correction = Field(
        "bonferroni", description="Multiple-testing control: bonferroni | bh (Benjamini-Hochberg)"
    )
    drift_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Data drift when more than this share of features drifted "
        "(0.05 of 22 = at least 2 agreeing)",
    )
    iou_drop: float = Field(
        0.1, ge=0, le=1, description="Concept drift when champion IoU falls by more than this"
    )
    sample_patches: int = Field(
        200, ge=1, description="Feature windows sampled from current imagery per check"
    )
    min_samples: int = Field(
        8, ge=1, description="Fewer current windows than this: wait for more imagery"
    )
    seed: int = Field(0, description="Window sampling seed (same scene -> same windows)")


class ApiParams(Section):
    """``api:``: the REST API's health endpoint."""

    min_free_disk_mb: int = Field(
        1024,
        ge=0,
        description="/satseg/health reports an error below this much free space under "
        "SATSEG_HOME",
    )
    health_timeout_s: float = Field(
        3, gt=0, description="Per-dependency timeout of /satseg/health (MLflow, Redis)"
    )


class Params(Section):
    """The whole params file: one typed section per stage."""

    ingest: IngestParams = Field(default_factory=IngestParams)
    preprocess: PreprocessParams = Field(default_factory=PreprocessParams)
    train: TrainParams = Field(default_factory=TrainParams)
    predict: PredictParams = Field(default_factory=PredictParams)
    monitor: MonitorParams = Field(default_factory=MonitorParams)
    api: ApiParams = Field(default_factory=ApiParams)

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
        return f"{key} {got!r}: choose one of {ctx.get('expected')}"
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        op, name = bounds[kind]
        return f"{key} must be {op} {ctx.get(name)}, got {got!r}"
    return f"{key}: {err['msg']} (got {got!r})"


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
        inner = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        fields[key] = (inner | None, Field(None, description=info.description))
    return create_model(  # type: ignore[call-overload,no-any-return]
        name or f"{section.__name__}Overrides",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def markdown_table(section: type[BaseModel]) -> str:
    """README table of ``section``: key, default, description (a test keeps them equal)."""
    rows = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for key, info in section.model_fields.items():
        default = default_of(section, key)
        shown = "null" if default is None else yaml.safe_dump(default).strip().removesuffix("...")
        desc = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{shown.strip()}` | {desc} |")
    return "\n".join(rows)


SECTIONS: dict[str, type[Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Params.model_fields.items()
}
