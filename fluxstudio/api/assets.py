"""`/api/v1/assets` and a project's asset list: read and delete. Uploading is `uploads.py`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.bodies import respond
from fluxstudio.api.context import media_urls, platform_of
from fluxstudio.api.schemas import AssetList
from fluxstudio.studio import assets


async def list_assets(request: Request) -> Response:
    user = await require_user(request)
    pool = platform_of(request).pool
    items = await assets.list_assets(pool, user, request.path_params["project_id"], media_urls(request))
    return respond(AssetList(items=items))


async def get_asset(request: Request) -> Response:
    user = await require_user(request)
    asset = await assets.get_asset(
        platform_of(request).pool, user, request.path_params["asset_id"], media_urls(request)
    )
    return respond(asset)


async def delete_asset(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    assert platform.storage is not None
    asset_id = request.path_params["asset_id"]
    await assets.delete_asset(platform.pool, platform.storage, platform.queue, user, asset_id)
    return Response(status_code=204)
