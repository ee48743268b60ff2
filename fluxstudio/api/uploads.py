"""Uploading media: with the bearer token (`POST /projects/{id}/assets`, multipart or raw), or through a
one-use capability URL (`POST /projects/{id}/uploads` makes one, `PUT /uploads/{token}` spends it).

Both stream the body to a temporary file (`receive.py`) and hand it to `studio.uploads.accept_upload`,
which probes it and keeps nothing when ffmpeg cannot read it. The project is checked before a byte is
read, so a wrong id costs a lookup, not a 5 GiB transfer. A capability is spent before the body is read
(one URL, one attempt; a stranger holding a spent URL cannot make us write anything to disk), but only
after a `Content-Length` over the limit has been refused, so an honest mistake does not spend it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.bodies import read_model, respond
from fluxstudio.api.context import platform_of, public_base
from fluxstudio.api.problems import status_of
from fluxstudio.api.receive import receive_upload, refuse_announced_oversize
from fluxstudio.api.schemas import UploadCreate, UploadResult, UploadTicket
from fluxstudio.errors import FluxError, Invalid
from fluxstudio.log import get_logger
from fluxstudio.runtime.platform import Platform
from fluxstudio.studio import projects, uploads
from fluxstudio.studio.users import User

UPLOAD_PATH = "/api/v1/uploads/"
DEFAULT_FILENAME = "upload"

log = get_logger()


async def upload_asset(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    project_id = request.path_params["project_id"]
    transcode = _flag(request, "transcode")
    refuse_announced_oversize(request, platform.settings.max_upload_bytes)
    await projects.get_project(platform.pool, user, project_id)
    return await _accept(request, platform, user, project_id, None, transcode, multipart=True)


async def create_upload_url(request: Request) -> Response:
    user = await require_user(request)
    body = await read_model(request, UploadCreate)
    grant = await uploads.create_upload(
        platform_of(request).pool, user, request.path_params["project_id"], body.filename,
        transcode=body.transcode,
    )
    url = public_base(request) + UPLOAD_PATH + grant.token
    return respond(UploadTicket(id=grant.id, upload_url=url, expires_at=grant.expires_at), 201)


async def put_upload(request: Request) -> Response:
    """The capability URL: no bearer token, the token in the path is the credential."""
    platform = platform_of(request)
    refuse_announced_oversize(request, platform.settings.max_upload_bytes)
    redeemed = await uploads.redeem_upload(platform.pool, request.path_params["token"])
    return await _accept(
        request, platform, redeemed.user, redeemed.project_id, redeemed.filename, redeemed.transcode,
        multipart=False,
    )


async def _accept(
    request: Request,
    platform: Platform,
    user: User,
    project_id: str,
    filename: str | None,
    transcode: bool,
    *,
    multipart: bool,
) -> Response:
    settings = platform.settings
    assert platform.storage is not None and platform.tools is not None
    try:
        async with receive_upload(
            request, platform.upload_dir, settings.max_upload_bytes, platform.metrics,
            multipart_allowed=multipart,
        ) as received:
            asset, job = await uploads.accept_upload(
                platform.pool, platform.storage, platform.tools, platform.queue, user, project_id,
                received.path,
                filename=filename or received.filename or DEFAULT_FILENAME,
                content_type=received.content_type,
                size=received.size,
                transcode=transcode,
                max_attempts=settings.job_max_attempts,
                max_bytes=settings.max_upload_bytes,
            )
    except FluxError as exc:
        platform.metrics.uploads.labels("rejected").inc()
        if status_of(exc) < 500:
            log.info("upload_rejected", project_id=project_id, code=exc.code, reason=exc.message)
        raise
    platform.metrics.uploads.labels("accepted").inc()
    return respond(UploadResult(asset=asset, job=job), 201)


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise Invalid(f"the query parameter {name} must be true or false")
