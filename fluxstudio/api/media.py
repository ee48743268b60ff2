"""`GET|HEAD /media/{key}`: HLS outputs of local storage, as a static file server would serve them.

Only keys under `hls/`: HLS outputs are public by their unguessable path, uploaded sources (`sources/…`)
never are. Everything else answers 404, the same 404 as a missing object, so the route reveals nothing.
Public objects are served for local storage only (with S3 the playback URLs point at the bucket or a
CDN), with `Access-Control-Allow-Origin: *` and a preflight, so hls.js on any page plays them.

A `signed` asset's objects are served only with a valid `?token=` (studio/playback.py), whatever the
storage: playlists and the storyboard are rewritten so that every URI they name carries the token (local
storage) or is an S3 URL presigned until the token expires (S3, where other objects answer with a
redirect to such a URL). Those answers are `private`: a shared cache must not keep a capability.

Players and CDNs need: byte ranges (206, and 416 with `Content-Range: bytes */size` for a range past the
end), `HEAD`, validators (`ETag`, `Last-Modified`, 304 on `If-None-Match`/`If-Modified-Since`, `If-Range`),
and the content type and cache policy of `storage.headers_for`, the same ones S3 objects carry.
"""

from __future__ import annotations

import posixpath
import re
import time
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from fluxstudio.api.context import platform_of
from fluxstudio.api.problems import problem
from fluxstudio.errors import Invalid, NotFound
from fluxstudio.media.playlists import rewrite_playlist_uris, rewrite_vtt_images
from fluxstudio.runtime.platform import Platform
from fluxstudio.storage import ObjectInfo, check_key
from fluxstudio.studio import playback

SERVED_PREFIX = "hls/"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: Any page may play public media (API.md section 7); these are what a player reads or sends.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified",
}
_PREFLIGHT = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range, If-None-Match, If-Modified-Since, If-Range",
    "Access-Control-Max-Age": "86400",
}
_REWRITTEN = (".m3u8", ".vtt")


async def preflight(request: Request) -> Response:
    """CORS preflight: GET with a Range header from any origin."""
    return Response(status_code=204, headers=_PREFLIGHT)


async def serve_media(request: Request) -> Response:
    platform = platform_of(request)
    key = request.path_params["key"]
    if not key.startswith(SERVED_PREFIX):
        raise NotFound("no such media object")
    try:
        check_key(key)
    except Invalid as exc:
        raise NotFound("no such media object") from exc
    assert platform.storage is not None
    access = await playback.media_access(
        platform.pool,
        key,
        request.query_params.get(playback.TOKEN_PARAM),
        platform.settings.playback_signing_key,
    )
    if access.signed:
        return await _serve_signed(request, platform, key, access)
    if platform.settings.media_dir is None:
        raise NotFound("no such media object")
    return await _serve_object(request, platform, key)


async def _serve_signed(
    request: Request, platform: Platform, key: str, access: playback.MediaAccess
) -> Response:
    assert platform.storage is not None and access.expires is not None and access.token is not None
    remaining = max(1, access.expires - int(time.time()))
    presign = getattr(platform.storage, "presigned_url", None)  # S3; local storage serves the bytes
    if not key.endswith(_REWRITTEN):
        if presign is None:
            return await _serve_object(
                request, platform, key, cache=f"private, max-age={min(remaining, 3600)}"
            )
        return RedirectResponse(await presign(key, remaining), 302, headers={**CORS_HEADERS,
                                "Cache-Control": "private, no-store"})  # fmt: skip
    info = await _stat(platform, key)
    text = b"".join([chunk async for chunk in platform.storage.open(key)]).decode("utf-8", "replace")
    base = posixpath.dirname(key)
    presigned: dict[str, str] = {}
    for uri in _uris(text, key):
        target = _resolve(base, uri, access.asset_id)
        if target is not None and presign is not None and not target.endswith(".m3u8"):
            presigned[uri] = await presign(target, remaining)

    def carry(uri: str) -> str:
        if _resolve(base, uri, access.asset_id) is None:
            return uri  # not one of the asset's objects: left as it is
        if uri in presigned:
            return presigned[uri]
        return f"{quote(uri, safe='/._-')}?{urlencode({playback.TOKEN_PARAM: access.token})}"

    rewrite = rewrite_vtt_images if key.endswith(".vtt") else rewrite_playlist_uris
    body = rewrite(text, carry)
    headers = {**CORS_HEADERS, "Cache-Control": "private, no-store"}
    return Response(body, media_type=info.content_type, headers=headers)


async def _stat(platform: Platform, key: str) -> ObjectInfo:
    assert platform.storage is not None
    try:
        return await platform.storage.stat(key)
    except NotFound as exc:  # a folder and a missing object alike: nothing tells that an id exists
        raise NotFound("no such media object") from exc


def _uris(text: str, key: str) -> list[str]:
    found: list[str] = []
    (rewrite_vtt_images if key.endswith(".vtt") else rewrite_playlist_uris)(
        text, lambda u: found.append(u) or u
    )
    return found


def _resolve(base: str, uri: str, asset_id: str) -> str | None:
    """The key a relative URI names, if it is one of this asset's outputs; None for anything else."""
    if "://" in uri or uri.startswith("/") or "?" in uri:
        return None
    key = posixpath.normpath(posixpath.join(base, uri))
    return key if key.startswith(f"{SERVED_PREFIX}{asset_id}/") else None


async def _serve_object(
    request: Request, platform: Platform, key: str, *, cache: str | None = None
) -> Response:
    assert platform.storage is not None
    info = await _stat(platform, key)
    headers = {
        **CORS_HEADERS,
        "ETag": info.etag,
        "Last-Modified": format_datetime(info.modified.replace(microsecond=0), usegmt=True),
        "Cache-Control": cache or info.cache_control,
        "Accept-Ranges": "bytes",
        "Content-Type": info.content_type,
    }
    if _not_modified(request, info):
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
    span = _requested_range(request, info)
    if span == "unsatisfiable":
        return problem(
            request,
            416,
            code="range_not_satisfiable",
            detail=f"the object has {info.size} bytes",
            headers={**CORS_HEADERS, "Content-Range": f"bytes */{info.size}", "Accept-Ranges": "bytes"},
        )
    status = 200
    start, end = 0, info.size
    if span is not None:
        start, end = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD" or end == start:
        return Response(status_code=status, headers=headers)
    body = platform.storage.open(key, start=start, end=end)
    return StreamingResponse(body, status_code=status, headers=headers)


def _not_modified(request: Request, info: ObjectInfo) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or info.etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since.tzinfo is not None and info.modified.replace(microsecond=0) <= since
    return False


def _requested_range(request: Request, info: ObjectInfo) -> tuple[int, int] | str | None:
    """(start, end exclusive), "unsatisfiable", or None for the whole object.

    One range only: for a multi-range request the whole object (200) is a valid answer (RFC 9110 §14.2)
    and players do not send them. A syntactically bad Range header is ignored, as the RFC says.
    """
    header = request.headers.get("range")
    if header is None:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != info.etag:
        return None
    match = _RANGE.match(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    size = info.size
    if first == "":  # suffix: the last N bytes
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(0, size - length), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or (last != "" and int(last) < start):
        return "unsatisfiable" if start >= size else None
    return start, end
