"""An asset's event stream (API.md section 8), as the SSE route consumes it.

Three sources merged into one stream: the asset's own Redis channel (comments, announced by
`studio.comments` on whichever replica wrote them), the channel of its unfinished job (progress and
status, published by the worker) and PostgreSQL, which is the truth. Subscriptions are made before
PostgreSQL is read, so a late reader gets the current asset first and misses nothing after it. Redis may
lose messages: on a resync, on a job's status message and every `recheck_s` of silence the asset and its
unfinished job are read again, so a status change always reaches the stream and a job started by
another replica is followed within `recheck_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from fluxstudio.errors import NotFound
from fluxstudio.queue import ProgressHub, asset_channel
from fluxstudio.studio.assets import get_asset
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.models import Asset
from fluxstudio.studio.users import User

Event = tuple[str, dict[str, Any]]

#: Messages buffered between the sources and the reader; a reader this far behind loses progress only.
_BUFFER = 1000


async def events(
    pool: asyncpg.Pool,
    hub: ProgressHub,
    user: User,
    asset_id: str,
    urls: MediaUrls,
    *,
    recheck_s: float = 2.0,
) -> AsyncIterator[Event]:
    """("asset", Asset) first, then ("comment", {op, comment}), ("progress", ProgressEvent) and
    ("asset", Asset) on a status change, until the asset is deleted. NotFound (another user's asset)
    is raised before anything is yielded or subscribed."""
    await get_asset(pool, user, asset_id, urls)
    merged: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(_BUFFER)
    async with hub.listen(asset_channel(asset_id)) as own, _Follower(hub, merged) as job:
        pump = asyncio.create_task(_pump("asset", own, merged), name=f"asset-events-{asset_id}")
        try:
            asset = await get_asset(pool, user, asset_id, urls)
            await job.follow(await _unfinished_job(pool, asset_id))
            yield "asset", _data(asset)
            while True:
                try:
                    source, message = await asyncio.wait_for(merged.get(), recheck_s)
                except TimeoutError:
                    source, message = "silence", {}
                name = message.get("event")
                if source == "asset" and name == "comment":
                    yield "comment", message.get("data") or {}
                    continue
                if source == "job" and name == "progress":
                    yield "progress", message.get("data") or {}
                    continue
                # A job's status, a resync or silence: PostgreSQL says what changed.
                try:
                    fresh = await get_asset(pool, user, asset_id, urls)
                except NotFound:
                    return
                await job.follow(await _unfinished_job(pool, asset_id))
                if _changed(fresh, asset):
                    yield "asset", _data(fresh)
                asset = fresh
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump


class _Follower:
    """The subscription to the asset's current unfinished job, switched when that job changes."""

    def __init__(self, hub: ProgressHub, merged: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
        self._hub = hub
        self._merged = merged
        self._job_id: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Follower:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def follow(self, job_id: str | None) -> None:
        if job_id == self._job_id:
            return
        await self._stop()
        self._job_id = job_id
        if job_id is None:
            return
        self._stack = contextlib.AsyncExitStack()
        live = await self._stack.enter_async_context(self._hub.subscribe(job_id))
        self._pump = asyncio.create_task(_pump("job", live, self._merged), name=f"job-follow-{job_id}")

    async def _stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._stack is not None:
            await self._stack.aclose()
        self._pump = self._stack = None
        self._job_id = None


async def _pump(
    source: str, live: AsyncIterator[dict[str, Any]], merged: asyncio.Queue[tuple[str, dict[str, Any]]]
) -> None:
    async for message in live:
        with contextlib.suppress(asyncio.QueueFull):
            merged.put_nowait((source, message))


async def _unfinished_job(pool: asyncpg.Pool, asset_id: str) -> str | None:
    return await pool.fetchval(
        "SELECT id FROM jobs WHERE asset_id = $1 AND status IN ('queued', 'running')"
        " ORDER BY created_at DESC LIMIT 1",
        asset_id,
    )


def _changed(a: Asset, b: Asset) -> bool:
    return (a.status, a.playback_url, len(a.renditions)) != (b.status, b.playback_url, len(b.renditions))


def _data(asset: Asset) -> dict[str, Any]:
    return asset.model_dump(mode="json")
