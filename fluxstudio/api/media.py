"""`GET|HEAD /media/{key}`: HLS outputs of local storage, as a static file server would serve them.

Only for local storage (with S3 the playback URLs point at the bucket or a CDN) and only keys under
`hls/`: HLS outputs are public by their unguessable path, uploaded sources (`sources/…`) never are.
Everything else answers 404, the same 404 as a missing object, so the route reveals nothing.

Players and CDNs need: byte ranges (206, and 416 with `Content-Range: bytes */size` for a range past the
end), `HEAD`, validators (`ETag`, `Last-Modified`, 304 on `If-None-Match`/`If-Modified-Since`, `If-Range`),
and the content type and cache policy of `storage.headers_for`, the same ones S3 objects carry.
"""

from __future__ import annotations

import re
from email.utils import format_datetime, parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from fluxstudio.api.context import platform_of
from fluxstudio.api.problems import problem
from fluxstudio.errors import Invalid, NotFound
from fluxstudio.storage import ObjectInfo, check_key

SERVED_PREFIX = "hls/"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def serve_media(request: Request) -> Response:
    platform = platform_of(request)
    key = request.path_params["key"]
    if platform.settings.media_dir is None or not key.startswith(SERVED_PREFIX):
        raise NotFound("no such media object")
    try:
        check_key(key)
    except Invalid as exc:
        raise NotFound("no such media object") from exc
    assert platform.storage is not None
    info = await platform.storage.stat(key)
    headers = {
        "ETag": info.etag,
        "Last-Modified": format_datetime(info.modified.replace(microsecond=0), usegmt=True),
        "Cache-Control": info.cache_control,
        "Accept-Ranges": "bytes",
        "Content-Type": info.content_type,
    }
    if _not_modified(request, info):
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
    span = _requested_range(request, info)
    if span == "unsatisfiable":
        return problem(
            request, 416, code="range_not_satisfiable",
            detail=f"the object has {info.size} bytes",
            headers={"Content-Range": f"bytes */{info.size}", "Accept-Ranges": "bytes"},
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
