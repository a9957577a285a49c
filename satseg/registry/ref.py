"""``ModelRef``: what other parts of satseg need to know about a registered model version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

POSTPROCESS_TAG = "postprocess"  # run tag: JSON of the threshold / min area tuned on val
CLASSES_TAG = "classes"  # run tag: JSON of the class table (satseg.classes); absent = binary


@dataclass
class ModelRef:
    """One version of the registered model (``settings.registered_model``)."""

    name: str
    version: str
    run_id: str
    dataset_tag: str | None = None
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    # threshold, min_area_px (+ opening_px, metric, split) tuned on val; {} before tuning
    postprocess: dict[str, Any] = field(default_factory=dict)
    # the class table the model was trained with (ClassTable.to_json / binary_json); {} = binary
    classes: dict[str, Any] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
