"""Prediction parameters and the layout of a scene's output folder.

``PredictParams`` holds everything besides the model that changes the outputs; its ``key``
is part of the skip check, so a re-run with other parameters recomputes.
"""

from __future__ import annotations

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
}
SUMMARY = "summary.json"


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

    def key(self) -> dict[str, Any]:
        return {
            "tile": self.tile,
            "overlap": self.overlap,
            "threshold": self.threshold,
            "min_area_px": self.min_area_px,
            "opening_px": self.opening_px,
            "bands": list(self.bands) if self.bands else None,
            "scale": self.scale,
        }

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


def output_paths(out_dir: Path) -> dict[str, Path]:
    return {k: out_dir / v for k, v in OUTPUT_NAMES.items()}


def error_path(out_dir: Path, scene: str) -> Path:
    return out_dir / f"{scene}.error.json"
