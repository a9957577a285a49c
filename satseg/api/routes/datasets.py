"""Datasets, their DVC versions and checkout of a version."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder

from satseg.api import catalog
from satseg.api.deps import MAY_RUN_INGEST, SettingsDep

router = APIRouter()


@router.get("/datasets", summary="Processed datasets and what is waiting in raw/")
def get_datasets(settings: SettingsDep) -> list[dict[str, Any]]:
    return catalog.datasets(settings)


@router.get("/data/versions", summary="Versions (DVC tags) of one or all datasets")
def get_versions(settings: SettingsDep, dataset: Annotated[str | None, Query()] = None) -> Any:
    return jsonable_encoder(catalog.data_versions(settings, dataset))


@router.post(
    "/data/checkout/{tag}",
    summary="Restore a dataset version's files",
    dependencies=[Depends(MAY_RUN_INGEST)],
)
def post_checkout(tag: str, settings: SettingsDep) -> Any:
    return jsonable_encoder(catalog.checkout(settings, tag))
