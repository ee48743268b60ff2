"""`/api/v1/assets` and a project's asset list: read, change the playback policy, frames, playback
tokens and delete. Uploading is `uploads.py`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.bodies import read_model, respond
from fluxstudio.api.context import media_urls, platform_of
from fluxstudio.api.schemas import AssetList, AssetPatch, PlaybackTokenCreate
from fluxstudio.errors import Invalid
from fluxstudio.studio import assets, playback, thumbnails


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


async def patch_asset(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    patch = await read_model(request, AssetPatch)
    asset = await playback.set_policy(
        platform.pool, user, request.path_params["asset_id"], patch.playback_policy,
        platform.settings.playback_signing_key, media_urls(request),
    )  # fmt: skip
    return respond(asset)


async def create_playback_token(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    body = await read_model(request, PlaybackTokenCreate, empty_ok=True)
    token = await playback.create_token(
        platform.pool, user, request.path_params["asset_id"], platform.settings.playback_signing_key,
        media_urls(request), ttl_s=body.ttl_s,
    )  # fmt: skip
    return respond(token, 201)


async def thumbnail(request: Request) -> Response:
    user = await require_user(request)
    query = request.query_params
    time_s = _number(query.get("time"), "time", float, 0.0)
    width = _number(query.get("width"), "width", int, thumbnails.DEFAULT_WIDTH)
    data = await thumbnails.thumbnail(
        platform_of(request), user, request.path_params["asset_id"], time_s, width
    )
    # The same (time, width) is always the same frame: private (it needs the token), but cacheable.
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


def _number(text: str | None, name: str, kind: type[int] | type[float], default: int | float):
    if text is None or text == "":
        return default
    try:
        return kind(text)
    except ValueError:
        raise Invalid(f"{name} must be a {'whole ' if kind is int else ''}number") from None
