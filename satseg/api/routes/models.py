"""Registered model versions and promotion to champion."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from satseg.api import catalog
from satseg.api.deps import MAY_RUN_RETRAIN, SettingsDep

router = APIRouter()


@router.get("/models", summary="Registered model versions with metrics, aliases and class tables")
def get_models(settings: SettingsDep) -> Any:
    return jsonable_encoder([catalog.model_entry(r) for r in catalog.models(settings)])


@router.post(
    "/models/{version}/promote",
    summary="Make a model version the champion",
    dependencies=[Depends(MAY_RUN_RETRAIN)],
)
def post_promote(version: str, settings: SettingsDep) -> Any:
    return jsonable_encoder(catalog.promote(settings, version))
