"""Processed datasets under git + DVC: versions, listing, checkout."""

from satseg.versioning.paths import dataset_dir
from satseg.versioning.repo import VersioningError, ensure_repo
from satseg.versioning.versions import (
    DatasetVersion,
    checkout,
    latest_version,
    list_versions,
    materialize,
    next_tag,
    version_dataset,
)

__all__ = [
    "DatasetVersion",
    "VersioningError",
    "checkout",
    "dataset_dir",
    "ensure_repo",
    "latest_version",
    "list_versions",
    "materialize",
    "next_tag",
    "version_dataset",
]
