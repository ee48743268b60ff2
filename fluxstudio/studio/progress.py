"""A job's event stream, as the SSE route and MCP's wait_for_job consume it.

The order is what makes it race-free: subscribe to the job's channel first, then read the row, so
nothing published after the read is missed. A reader that joins late gets the current state from
PostgreSQL, then the live events. Redis may lose events (it was restarted, the hub reconnected): on a
resync, and whenever nothing has arrived for a while, the row is read again, so a stream always ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from fluxstudio.errors import NotFound
from fluxstudio.queue import ProgressHub
from fluxstudio.studio.jobs import get_job, output_prefix
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.models import TERMINAL, Job
from fluxstudio.studio.users import User

Event = tuple[str, dict[str, Any]]


async def events(
    pool: asyncpg.Pool,
    hub: ProgressHub,
    user: User,
    job_id: str,
    *,
    recheck_s: float = 5.0,
    urls: MediaUrls | None = None,
) -> AsyncIterator[Event]:
    """("status", Job) first, then ("progress", ProgressEvent) and ("status", Job) as they happen, and
    ("end", Job) once the job has finished; a finished job gives ("end", Job) at once.

    ("playable", {job_id, playback_url}) once the job's stream can be played (watch while transcoding),
    at most once, before "end" even for a reader that joins late. `playback_url` is null for a signed
    asset (its URLs come with a playback token) or without `urls`.

    Progress never goes backwards within an attempt. NotFound (another user's job) is raised before
    anything is yielded or subscribed.
    """
    job = await get_job(pool, user, job_id)
    if job.status in TERMINAL:
        if (playable := await _playable(pool, job, urls)) is not None:
            yield "playable", playable
        yield "end", _data(job)
        return
    async with hub.subscribe(job_id) as live:
        job = await get_job(pool, user, job_id)
        yield "status", _data(job)
        told = False
        if (playable := await _playable(pool, job, urls)) is not None:
            told = True
            yield "playable", playable
        if job.status in TERMINAL:
            yield "end", _data(job)
            return
        floor = job.progress
        while True:
            message = await _next(live, recheck_s)
            if message.get("event") == "playable":
                if not told and (playable := await _playable(pool, job, urls)) is not None:
                    told = True
                    yield "playable", playable
                continue
            if message.get("event") == "progress" and job.status == "running":
                data = message.get("data") or {}
                if data.get("progress", 0) >= floor:
                    floor = data["progress"]
                    yield "progress", data
                continue
            if message.get("event") == "status":
                fresh = Job.model_validate(message["data"])
            else:  # resync, silence, or progress of a run we have not seen start: ask PostgreSQL
                try:
                    fresh = await get_job(pool, user, job_id)
                except NotFound:  # the asset was deleted under the reader
                    return
                if _same(fresh, job):
                    continue
            if fresh.attempts != job.attempts or fresh.status != job.status:
                floor = fresh.progress  # a new attempt starts again from its own progress
            job = fresh
            yield "status", _data(job)
            if job.status in TERMINAL:
                if not told and (playable := await _playable(pool, job, urls)) is not None:
                    yield "playable", playable
                yield "end", _data(job)
                return


async def _next(live: AsyncIterator[dict[str, Any]], within_s: float) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(anext(live), within_s)
    except TimeoutError:
        return {"event": "resync"}


async def _playable(pool: asyncpg.Pool, job: Job, urls: MediaUrls | None) -> dict[str, Any] | None:
    """The `playable` event's data if the job's stream was playable (and not taken down), else None."""
    row = await pool.fetchrow(
        "SELECT j.playable_at IS NOT NULL AS playable, a.playback_policy FROM jobs j"
        " JOIN assets a ON a.id = j.asset_id WHERE j.id = $1",
        job.id,
    )
    if row is None or not row["playable"]:
        return None
    key = output_prefix(job.asset_id, job.id) + "master.m3u8"
    public = urls is not None and row["playback_policy"] == "public"
    return {"job_id": job.id, "playback_url": urls.url(key) if public and urls is not None else None}


def _same(a: Job, b: Job) -> bool:
    return (a.status, a.attempts) == (b.status, b.attempts)


def _data(job: Job) -> dict[str, Any]:
    return job.model_dump(mode="json")
