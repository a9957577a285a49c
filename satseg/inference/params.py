"""Prediction parameters and the layout of a scene's output folder.

``PredictParams`` holds everything besides the model that changes the outputs; its ``key``
is part of the skip check, so a re-run with other parameters recomputes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from satseg import params
from satseg.params import default_of

OUTPUT_NAMES = {
    "probability": "prob.tif",
    "mask": "mask.tif",
    "vectors": "mask.geojson",
    "quicklook": "quicklook.png",
    "stac": "item.json",
    "uncertainty": "uncertainty.tif",
}
# A multi-class model's outputs: the class raster instead of the binary mask; prob.tif has
# one band per class and the GeoJSON one polygon layer per class (same file names as binary).
CLASS_OUTPUT_NAMES = {
    "probability": "prob.tif",
    "classes": "classes.tif",
    "vectors": "mask.geojson",
    "quicklook": "quicklook.png",
    "stac": "item.json",
    "uncertainty": "uncertainty.tif",
}
SUMMARY = "summary.json"
# What a model registered without tuned post-processing gets (the values before tuning).
FALLBACK_POSTPROCESS: dict[str, Any] = {"threshold": 0.5, "min_area_px": 16}


class PredictParams(params.PredictParams):
    """Everything that changes the outputs besides the model (part of the skip key).

    The ``predict:`` section with ``bands``/``scale`` resolved (``Params.resolved_predict``);
    built directly, they default to the ``ingest:`` section's defaults.
    """

    bands: tuple[int, ...] | None = default_of(params.IngestParams, "bands")
    scale: params.Scale = default_of(params.IngestParams, "scale")
    # the reader's pixel limits are ingest's: one limit for what satseg opens (not in key())
    max_megapixels: float = default_of(params.IngestParams, "max_megapixels")
    max_plain_megapixels: float = default_of(params.IngestParams, "max_plain_megapixels")

    def validate(self) -> None:  # type: ignore[override]
        """Re-check the ranges (construction already did; kept for callers)."""
        params.build(type(self), self.model_dump(), "predict options")

    def for_model(self, postprocess: Mapping[str, Any] | None) -> PredictParams:
        """These params with an unset (``None``) threshold / min area taken from the model.

        ``postprocess`` is what evaluation tuned on the val split and stored with the model
        (``ModelRef.postprocess``); a model without it gets ``FALLBACK_POSTPROCESS``, so
        models registered before tuning existed predict exactly as they did. A value the
        user set (params.yaml, CLI, DAG) always wins.
        """
        tuned = dict(postprocess or {})
        fill = {
            k: tuned.get(k) if tuned.get(k) is not None else fallback
            for k, fallback in FALLBACK_POSTPROCESS.items()
            if getattr(self, k) is None
        }
        if not fill:
            return self
        return params.build(type(self), {**self.model_dump(), **fill}, "the model's postprocess")

    def mask_rule(self) -> tuple[float, int]:
        """(threshold, min_area_px) once resolved by ``for_model`` (an error before)."""
        if self.threshold is None or self.min_area_px is None:
            raise ValueError("threshold / min_area_px not resolved: call for_model() first")
        return self.threshold, self.min_area_px

    def key(self) -> dict[str, Any]:
        key: dict[str, Any] = {
            "tile": self.tile,
            "overlap": self.overlap,
            "threshold": self.threshold,
            "min_area_px": self.min_area_px,
            "opening_px": self.opening_px,
            "bands": list(self.bands) if self.bands else None,
            "scale": self.scale,
        }
        # newer options only when set: outputs made before they existed stay up to date
        for name, off in (("tta", "none"), ("regularize", False), ("simplify_px", 0)):
            if getattr(self, name) != off:
                key[name] = getattr(self, name)
        return key

    @classmethod
    def from_params(cls, all_params: params.Params, **over: Any) -> PredictParams:
        """From params.yaml (``predict:`` resolved against ``ingest:``); ``None`` overrides are
        ignored, the others validated (a :class:`satseg.params.ParamsError` names the bad one).
        """
        vals = all_params.resolved_predict().model_dump()
        ing = all_params.ingest
        vals.update(
            max_megapixels=ing.max_megapixels, max_plain_megapixels=ing.max_plain_megapixels
        )
        vals.update({k: v for k, v in over.items() if v is not None})
        return params.build(cls, vals, "predict options")


def scene_name(path: Path | str) -> str:
    return Path(path).stem


def output_paths(out_dir: Path, multiclass: bool = False) -> dict[str, Path]:
    names = CLASS_OUTPUT_NAMES if multiclass else OUTPUT_NAMES
    return {k: out_dir / v for k, v in names.items()}


def error_path(out_dir: Path, scene: str) -> Path:
    return out_dir / f"{scene}.error.json"
