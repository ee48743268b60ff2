"""`POST /projects/{id}/imports`: a worker fetches a URL into a new asset (API.md §9); 202 at once.

What can be known without DNS (scheme, a literal private address) is refused here with 422; everything
else is checked by the worker, address by address, when it connects."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.bodies import read_model, respond
from fluxstudio.api.context import media_urls, platform_of
from fluxstudio.api.schemas import ImportCreate, UploadResult
from fluxstudio.outbound import OutboundPolicy
from fluxstudio.studio import imports


async def create_import(request: Request) -> Response:
    user = await require_user(request)
    body = await read_model(request, ImportCreate)
    platform = platform_of(request)
    asset = await imports.create_import(
        platform.pool, platform.queue, user, request.path_params["project_id"], body.url,
        OutboundPolicy(allowed=platform.settings.import_allowed_networks), media_urls(request),
        filename=body.filename, transcode=body.transcode,
    )  # fmt: skip
    return respond(UploadResult(asset=asset, job=None), 202)
