"""``POST /predictions`` (a scene -> a queued satseg_predict run) and its state and outputs.

``satseg.api.predictions`` does the work; uploads are checked by ``satseg.api.uploads``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse

from satseg.api import predictions, uploads
from satseg.api.deps import MAY_READ_PREDICT, MAY_RUN_PREDICT, SettingsDep, UserDep
from satseg.api.routes.uploads import one_of_each_part

router = APIRouter()
Opt = Annotated[str | None, Form()]


@router.post(
    "/predictions",
    status_code=201,
    summary="Segment one scene: queue a satseg_predict run (its run id is the prediction id)",
    dependencies=[Depends(MAY_RUN_PREDICT), Depends(one_of_each_part)],
)
def post_prediction(
    settings: SettingsDep,
    user: UserDep,
    file: Annotated[UploadFile | None, File(description="GeoTIFF, PNG or JPEG")] = None,
    scene: Annotated[
        str | None, Form(description="or: a scene already on the server, e.g. raw/city/a.tif")
    ] = None,
    model_version: Annotated[
        str | None, Form(description="Registry version or alias; empty = champion")
    ] = None,
    threshold: Annotated[str | None, Form(description="Probability -> mask")] = None,
    tile: Annotated[str | None, Form(description="Sliding-window tile edge (px)")] = None,
    overlap: Annotated[str | None, Form(description="Px shared by neighbouring tiles")] = None,
) -> dict[str, Any]:
    try:
        if (file is None) == (not scene):
            raise predictions.PredictError(400, "send either a file or a scene name, not both")
        opts = predictions.options(
            settings, {"threshold": threshold, "tile": tile, "overlap": overlap}
        )
        version = predictions.model_version(settings, model_version)
        if file is not None:
            path = predictions.save_scene(settings, file.file, file.filename)
        else:
            path = predictions.named_scene(settings, str(scene))
        return jsonable_encoder(predictions.queue(settings, path, version, opts, user))
    except uploads.UploadError as e:
        raise HTTPException(e.status, {"error": e.message, "check": e.check}) from e
    except predictions.PredictError as e:
        raise HTTPException(e.status, e.message) from e


@router.get(
    "/predictions/{run_id}",
    summary="State of an on-demand prediction; when done, links to its outputs",
    dependencies=[Depends(MAY_READ_PREDICT)],
)
def get_prediction(run_id: str, settings: SettingsDep, request: Request) -> Any:
    out = predictions.status(settings, run_id)
    if out is None:
        raise HTTPException(404, f"no {predictions.PREDICT_DAG} run {run_id!r}")
    files = out.pop("files")
    out["outputs"] = {
        name: str(request.url_for("get_prediction_output", run_id=run_id, name=name))
        for name in files
    }
    return jsonable_encoder(out)


@router.get(
    "/predictions/{run_id}/outputs/{name}",
    summary="One output file of a finished prediction (COG, GeoJSON, quicklook, STAC item)",
    dependencies=[Depends(MAY_READ_PREDICT)],
)
def get_prediction_output(run_id: str, name: str, settings: SettingsDep) -> FileResponse:
    run = predictions.status(settings, run_id)
    path = predictions.outputs(settings, run).get(name) if run else None
    if path is None:
        raise HTTPException(404, f"no output {name!r} of prediction {run_id!r}")
    return FileResponse(path, filename=f"{run['scene']}_{name}" if run else name)
