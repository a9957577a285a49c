"""Prediction parameters and the layout of a scene's output folder.

``PredictParams`` holds everything besides the model that changes the outputs; its ``key``
is part of the skip check, so a re-run with other parameters recomputes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUT_NAMES = {
    "probability": "prob.tif",
    "mask": "mask.tif",
    "vectors": "mask.geojson",
    "quicklook": "quicklook.png",
    "stac": "item.json",
}
SUMMARY = "summary.json"


@dataclass(frozen=True)
class PredictParams:
    """Everything that changes the outputs besides the model (part of the skip key)."""

    tile: int = 256
    overlap: int = 64
    batch_size: int = 8
    threshold: float = 0.5
    min_area_px: int = 16
    opening_px: int = 3
    precision: str = "auto"
    bands: tuple[int, ...] | None = None
    scale: str = "percentile"

    def validate(self) -> None:
        if self.tile < 32:
            raise ValueError(f"tile={self.tile}: must be at least 32 px")
        if not 0 <= self.overlap <= self.tile // 2:
            raise ValueError(f"overlap={self.overlap}: must be in [0, tile/2]")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold={self.threshold}: must be in (0, 1)")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")

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
    def from_params(cls, section: dict[str, Any], **over: Any) -> PredictParams:
        """From the ``predict:`` section of params.yaml; ``None`` overrides are ignored."""
        fields = cls.__dataclass_fields__
        vals = {k: v for k, v in section.items() if k in fields}
        vals.update({k: v for k, v in over.items() if v is not None and k in fields})
        if vals.get("bands") is not None:
            vals["bands"] = tuple(vals["bands"])
        return cls(**vals)


def scene_name(path: Path | str) -> str:
    return Path(path).stem


def output_paths(out_dir: Path) -> dict[str, Path]:
    return {k: out_dir / v for k, v in OUTPUT_NAMES.items()}


def error_path(out_dir: Path, scene: str) -> Path:
    return out_dir / f"{scene}.error.json"
