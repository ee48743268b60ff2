"""`GET /api/v1/jobs/{id}/events` (a job's progress) and `GET /api/v1/assets/{id}/events` (an asset's
comments, status and progress) as Server-Sent Events.

An asset stream starts with `event: asset` (the asset now, from PostgreSQL), then `comment`, `progress`
and `asset` as they happen; see `studio.asset_events`.

`event: status` (a Job) first, then `event: progress`, `event: status` and `event: playable` as they
happen, `event: end` (a Job) once it has finished, and the stream closes; a comment line every 15 s
keeps proxies from closing a quiet stream. The order and the race-freedom are
`studio.progress.events`'s; this module only frames them. The first event is read before the response
starts, so another user's job is a 404 problem, not a 200 stream that dies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.context import media_urls, platform_of
from fluxstudio.api.problems import DATABASE_DOWN
from fluxstudio.errors import FluxError, Unavailable
from fluxstudio.log import get_logger
from fluxstudio.studio import asset_events, progress

PING_S = 15
#: A client that stops reading for this long is dropped rather than holding a task and a subscription.
SEND_TIMEOUT_S = 30
#: Milliseconds an EventSource waits before reconnecting after the stream is cut.
RETRY_MS = 2000

log = get_logger()


async def job_events(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    if platform.hub is None:
        raise Unavailable("live progress is unavailable")
    job_id = request.path_params["job_id"]
    stream = progress.events(platform.pool, platform.hub, user, job_id, urls=media_urls(request))
    try:
        first = await anext(stream)
    except BaseException:
        await stream.aclose()
        raise
    return EventSourceResponse(_frames(first, stream, job_id), ping=PING_S, send_timeout=SEND_TIMEOUT_S)


async def asset_events_stream(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    if platform.hub is None:
        raise Unavailable("live events are unavailable")
    asset_id = request.path_params["asset_id"]
    stream = asset_events.events(platform.pool, platform.hub, user, asset_id, media_urls(request))
    try:
        first = await anext(stream)
    except BaseException:
        await stream.aclose()
        raise
    return EventSourceResponse(_frames(first, stream, asset_id), ping=PING_S, send_timeout=SEND_TIMEOUT_S)


async def _frames(
    first: tuple[str, dict[str, Any]], stream: AsyncIterator[tuple[str, dict[str, Any]]], subject: str
) -> AsyncIterator[ServerSentEvent]:
    yield _frame(*first, retry=RETRY_MS)
    try:
        async for name, data in stream:
            yield _frame(name, data)
    except (FluxError, *DATABASE_DOWN) as exc:
        # A dependency failed mid-stream: end this stream (the client reconnects and gets the state
        # again) instead of logging it as a crash.
        reason = getattr(exc, "message", None) or type(exc).__name__
        log.warning("event_stream_interrupted", subject=subject, error=reason)


def _frame(name: str, data: dict[str, Any], *, retry: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(data, separators=(",", ":")), event=name, retry=retry)
