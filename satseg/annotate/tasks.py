"""The annotation queue as people see it: each dataset's tasks, ranked, open or ingested.

A task counts as ingested once ingest wrote a provenance record for a scene of that name
(``raw/.satseg/<dataset>/<task>.ingest.json``): the corrected pair came back through the
inbox. Nothing else marks it, so the queue cannot disagree with what was ingested.
"""

from __future__ import annotations

from typing import Any

from satseg.annotate.export import annotate_root, read_index
from satseg.config import Settings
from satseg.ingest.state import provenance_path


def datasets(settings: Settings) -> list[str]:
    root = settings.home / "annotate"
    return sorted(p.parent.name for p in root.glob("*/tasks.json")) if root.is_dir() else []


def list_tasks(settings: Settings, dataset: str | None = None) -> list[dict[str, Any]]:
    """Tasks of ``dataset`` (or all), best rank first, each with ``status`` and file paths."""
    out = []
    for ds in [dataset] if dataset else datasets(settings):
        root = annotate_root(settings, ds)
        for t in read_index(settings, ds)["tasks"].values():
            done = provenance_path(settings, ds, t["task"]).is_file()
            out.append(
                {
                    **t,
                    "status": "ingested" if done else "open",
                    "image_path": str(root / t["image"]),
                    "labels_path": str(root / t["labels"]),
                }
            )
    return sorted(out, key=lambda t: (t["dataset"], t["rank"]))
