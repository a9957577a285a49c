"""The class table: which label, property value or raster value is which class index.

``ingest.classes`` (typed in :mod:`satseg.params`) lists the classes in order; class ``i`` is
stored as pixel value ``i`` in a multi-class patch mask, and :data:`IGNORE` (255) marks pixels
that count for nothing (unlabeled, nodata): excluded from the loss and the metrics, which is not
the same as a background class. Without a table the dataset is binary, exactly as before: one
foreground class (``building``), masks 0/255.

The table travels with the data (the dataset manifest), the MLflow run and the registered model,
so that training and inference never guess which output channel is which class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from satseg.params import IngestParams
from satseg.vocab import printable

IGNORE = 255
BINARY_FG, BINARY_BG = 255, 0  # stored values of a binary mask
BINARY_NAME = "building"
BINARY_COLOR = "#ff0000"


class UnknownLabel(ValueError):
    """A label no class of the table names (``ingest.unknown_label: error``)."""


@dataclass(frozen=True)
class ClassTable:
    """Ordered classes with their colours and the source values mapped to each index."""

    names: tuple[str, ...]
    colors: tuple[str, ...]
    labels: dict[str, int]  # LabelMe label / GeoJSON value -> class index
    values: dict[int, int]  # mask raster value -> class index
    unlabeled: int  # the stored value of pixels no shape covers (IGNORE or a class index)
    unknown: str  # error | ignore

    @classmethod
    def from_params(cls, ing: IngestParams) -> ClassTable | None:
        """The table of ``ingest.classes``, or None for a binary dataset."""
        if ing.classes is None:
            return None
        names = tuple(c.name for c in ing.classes)
        labels = {lab: i for i, c in enumerate(ing.classes) for lab in (c.labels or [c.name])}
        values = {v: i for i, c in enumerate(ing.classes) for v in c.values}
        unlabeled = IGNORE if ing.unlabeled == "ignore" else names.index(ing.unlabeled)
        return cls(
            names=names,
            colors=tuple(c.color for c in ing.classes),
            labels=labels,
            values=values,
            unlabeled=unlabeled,
            unknown=ing.unknown_label,
        )

    def __len__(self) -> int:
        return len(self.names)

    def index_of(self, label: Any, what: str) -> int | None:
        """Class index of ``label``; None when it is skipped; UnknownLabel when unknown."""
        key = label if isinstance(label, str) else str(label)
        if key in self.labels:
            return self.labels[key]
        if self.unknown == "ignore":
            return None
        known = ", ".join(sorted(self.labels))
        raise UnknownLabel(
            f"{what}: label {printable(key)!r} is not in the class table ({known}); "
            "add it to a class's labels in ingest.classes or set ingest.unknown_label: ignore"
        )

    def value_lut(self) -> np.ndarray:
        """uint8 lookup: mask raster value -> stored class value (unmapped -> unlabeled)."""
        lut = np.full(256, self.unlabeled, np.uint8)
        for v, i in self.values.items():
            lut[v] = i
        return lut

    def to_json(self) -> dict[str, Any]:
        """The table as recorded in the manifest, the MLflow run and the registered model."""
        return {
            "classes": [
                {"index": i, "name": n, "color": c}
                for i, (n, c) in enumerate(zip(self.names, self.colors, strict=True))
            ],
            "ignore_index": IGNORE,
            "unlabeled": "ignore" if self.unlabeled == IGNORE else self.names[self.unlabeled],
        }


def binary_json() -> dict[str, Any]:
    """The class table of a binary dataset or model (one foreground class)."""
    return {
        "classes": [{"index": 1, "name": BINARY_NAME, "color": BINARY_COLOR}],
        "ignore_index": None,
        "unlabeled": "background",
    }


@dataclass(frozen=True)
class ModelClasses:
    """What a model's output channels mean: the class table as recorded with the model.

    Binary (``multiclass`` False): one sigmoid channel, the probability of ``names[0]``
    (``building`` unless the table says otherwise), today's path. Multi-class: one softmax
    channel per class, channel ``i`` = class index ``i`` = pixel value ``i`` of the class
    raster; :data:`IGNORE` is the class raster's nodata.
    """

    names: tuple[str, ...]
    colors: tuple[str, ...]
    multiclass: bool

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> ModelClasses:
        """From ``ClassTable.to_json()`` / ``binary_json()``; None or {} (a model registered
        before class tables) is binary ``building``."""
        doc = doc or binary_json()
        rows = sorted(doc.get("classes") or binary_json()["classes"], key=lambda c: c["index"])
        multiclass = doc.get("ignore_index") is not None
        if multiclass and [c["index"] for c in rows] != list(range(len(rows))):
            raise ValueError(f"class indices must be 0..n-1, got {[c['index'] for c in rows]}")
        return cls(
            names=tuple(str(c["name"]) for c in rows),
            colors=tuple(str(c.get("color") or BINARY_COLOR) for c in rows),
            multiclass=multiclass,
        )

    @property
    def channels(self) -> int:
        """Model output channels: 1 (sigmoid) for binary, n (softmax) for multi-class."""
        return len(self.names) if self.multiclass else 1

    def rgb(self) -> list[tuple[int, int, int]]:
        """Colours as RGB tuples, in class order."""
        return [tuple(int(c.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)) for c in self.colors]  # type: ignore[misc]
