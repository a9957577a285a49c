"""``POST /data/upload`` into the inbox, and the middleware that caps an upload's size.

``satseg.api.uploads`` validates and stores the file; this module is the HTTP edge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from satseg.api import uploads
from satseg.api.deps import MAY_RUN_INGEST, SettingsDep

MULTIPART_SLACK = 64 * 1024  # multipart headers and boundaries around the file

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

router = APIRouter()
# a second one was silently dropped (the last one won)
SINGLE_PARTS = ("file", "dataset", "scene", "model_version", "threshold", "tile", "overlap")
UPLOAD_PATHS = ("/data/upload", "/predictions")  # POST routes taking a file: size-capped


async def one_of_each_part(request: Request) -> None:
    """Refuse a form with two ``file`` (or ``dataset``) parts instead of keeping the last."""
    form = await request.form()  # parsed once: FastAPI reads the same cached form
    twice = [name for name in SINGLE_PARTS if len(form.getlist(name)) > 1]
    if twice:
        raise HTTPException(
            400,
            {
                "error": f"one upload per request: the form has {len(form.getlist(twice[0]))} "
                f"{twice[0]!r} parts (send each file in its own request)",
                "check": "multiple_parts",
            },
        )


@router.post(
    "/data/upload",
    status_code=201,
    summary="Upload imagery or labels into the inbox (picked up by satseg_ingest)",
    dependencies=[Depends(MAY_RUN_INGEST), Depends(one_of_each_part)],
)
def post_upload(
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="GeoTIFF, PNG, JPEG, LabelMe or GeoJSON")],
    dataset: Annotated[
        str | None,
        Form(description="inbox subfolder: a dataset name, or predict for scenes to segment"),
    ] = None,
) -> dict[str, Any]:
    try:
        saved = uploads.save_upload(file.file, file.filename, dataset, settings)
    except uploads.UploadError as e:
        raise HTTPException(e.status, {"error": e.message, "check": e.check}) from e
    return jsonable_encoder(saved)


class UploadSizeLimit:
    """Refuse oversized uploads while they stream in, before they are spooled to disk."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(UPLOAD_PATHS):
            await self.app(scope, receive, send)
            return
        limit = self.limit() + MULTIPART_SLACK
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = JSONResponse(
                {
                    "detail": f"upload larger than {self.limit() // (1024 * 1024)} MB",
                    "check": "size",
                },
                status_code=413,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # FastAPI re-raises HTTPExceptions met while reading the body.
                raise HTTPException(413, f"upload larger than {self.limit() // (1024 * 1024)} MB")
            return message

        await self.app(scope, limited, send)
