"""tus 1.0.0 at `/api/v1/tus` (API.md §9): core protocol plus creation, creation-with-upload, termination
and expiration, so tus-js-client, Uppy and tuspy work unchanged.

Written here rather than taken from a library: the maintained Python servers (tuspyserver, a FastAPI
router) keep their state in JSON files and their bytes in one local folder, which is exactly what must
not happen behind several replicas with S3; the protocol itself is five small handlers. This module only
translates headers; the rules (ownership, offsets, locking, parts, the asset at the last byte) are
`studio/tus.py`. Errors are problem documents like everywhere, with `Tus-Resumable` added.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from email.utils import format_datetime
from functools import wraps

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.context import platform_of
from fluxstudio.api.problems import (
    MalformedRequest,
    PreconditionFailed,
    UnsupportedMediaType,
    flux_error,
)
from fluxstudio.errors import FluxError
from fluxstudio.log import get_logger
from fluxstudio.studio import tus
from fluxstudio.studio.tus import TusUpload
from fluxstudio.studio.users import User

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration"
TUS_PATH = "/api/v1/tus"
OFFSET_STREAM = "application/offset+octet-stream"
#: Headers a browser client must be allowed to send and read (CORS, API.md §7).
REQUEST_HEADERS = (
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Offset",
    "Upload-Metadata",
    "Upload-Defer-Length",
)
EXPOSED_HEADERS = (
    "Location", "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Upload-Offset",
    "Upload-Length", "Upload-Metadata", "Upload-Expires", "Asset-Id", "Job-Id",
)  # fmt: skip

log = get_logger()

Handler = Callable[[Request], Awaitable[Response]]


def _tus(handler: Handler) -> Handler:
    """Every answer, errors included, says which tus version it speaks."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request)
        except FluxError as exc:
            response = await flux_error(request, exc)
        response.headers["Tus-Resumable"] = TUS_VERSION
        response.headers["Cache-Control"] = "no-store"
        return response

    return endpoint


def _check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise PreconditionFailed(f"this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}")


def _number(request: Request, name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit() or len(value) > 18:
        raise MalformedRequest(f"{name} must be a non-negative whole number")
    return int(value)


def _http_date(when: datetime | None) -> str:
    return format_datetime(when, usegmt=True) if when is not None else ""


def _state_headers(upload: TusUpload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset), "Upload-Expires": _http_date(upload.expires_at)}
    if upload.asset_id:
        headers["Asset-Id"] = upload.asset_id
        if upload.job_id:
            headers["Job-Id"] = upload.job_id
    return headers


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body; a client that hangs up simply ends it (what arrived is kept, tus resumes)."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        log.info("tus_client_disconnected")


@_tus
async def options(request: Request) -> Response:
    settings = platform_of(request).settings
    return Response(
        status_code=204,
        headers={
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(settings.max_upload_bytes),
        },
    )


@_tus
async def create(request: Request) -> Response:
    _check_version(request)
    user = await require_user(request)
    platform = platform_of(request)
    assert platform.storage is not None
    if "upload-defer-length" in request.headers:
        raise MalformedRequest("Upload-Defer-Length is not supported: send Upload-Length")
    upload = await tus.create_upload(
        platform.pool, platform.storage, user,
        length=_number(request, "upload-length"),
        metadata_header=request.headers.get("upload-metadata"),
        max_bytes=platform.settings.max_upload_bytes,
    )  # fmt: skip
    location = str(request.base_url).rstrip("/") + f"{TUS_PATH}/{upload.id}"
    headers = {"Location": location, "Upload-Expires": _http_date(upload.expires_at)}
    if request.headers.get("content-type", "").lower() == OFFSET_STREAM:  # creation-with-upload
        written = await _write(request, user, upload.id, 0)
        headers.update(_state_headers(written.upload))
    return Response(status_code=201, headers=headers)


@_tus
async def head(request: Request) -> Response:
    _check_version(request)
    user = await require_user(request)
    upload = await tus.head_upload(platform_of(request).pool, user, request.path_params["tus_id"])
    headers = {**_state_headers(upload), "Upload-Length": str(upload.length)}
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    return Response(status_code=200, headers=headers)


@_tus
async def patch(request: Request) -> Response:
    _check_version(request)
    if request.headers.get("content-type", "").lower() != OFFSET_STREAM:
        raise UnsupportedMediaType(f"a PATCH body must be {OFFSET_STREAM}")
    offset = _number(request, "upload-offset")
    user = await require_user(request)
    written = await _write(request, user, request.path_params["tus_id"], offset)
    return Response(status_code=204, headers=_state_headers(written.upload))


@_tus
async def delete(request: Request) -> Response:
    _check_version(request)
    user = await require_user(request)
    platform = platform_of(request)
    assert platform.storage is not None
    await tus.delete_upload(platform.pool, platform.storage, user, request.path_params["tus_id"])
    return Response(status_code=204)


async def _write(request: Request, user: User, upload_id: str, offset: int) -> tus.Written:
    platform = platform_of(request)
    assert platform.storage is not None and platform.tools is not None
    settings = platform.settings
    written = await tus.write(
        platform.pool, platform.storage, platform.tools, platform.queue, user, upload_id, offset,
        _body(request), upload_dir=platform.upload_dir, max_attempts=settings.job_max_attempts,
        max_bytes=settings.max_upload_bytes,
    )  # fmt: skip
    if written.asset is not None:
        platform.metrics.uploads.labels("accepted").inc()
    return written
