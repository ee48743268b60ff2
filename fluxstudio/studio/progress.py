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
from fluxstudio.studio.jobs import get_job
from fluxstudio.studio.models import TERMINAL, Job
from fluxstudio.studio.users import User

Event = tuple[str, dict[str, Any]]


async def events(
    pool: asyncpg.Pool, hub: ProgressHub, user: User, job_id: str, *, recheck_s: float = 5.0
) -> AsyncIterator[Event]:
    """("status", Job) first, then ("progress", ProgressEvent) and ("status", Job) as they happen, and
    ("end", Job) once the job has finished; a finished job gives ("end", Job) at once.

    Progress never goes backwards within an attempt. NotFound (another user's job) is raised before
    anything is yielded or subscribed.
    """
    job = await get_job(pool, user, job_id)
    if job.status in TERMINAL:
        yield "end", _data(job)
        return
    async with hub.subscribe(job_id) as live:
        job = await get_job(pool, user, job_id)
        yield "status", _data(job)
        if job.status in TERMINAL:
            yield "end", _data(job)
            return
        floor = job.progress
        while True:
            message = await _next(live, recheck_s)
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
                yield "end", _data(job)
                return


async def _next(live: AsyncIterator[dict[str, Any]], within_s: float) -> dict[str, Any]:
    try:
        return await asyncio.wait_for(anext(live), within_s)
    except TimeoutError:
        return {"event": "resync"}


def _same(a: Job, b: Job) -> bool:
    return (a.status, a.attempts) == (b.status, b.attempts)


def _data(job: Job) -> dict[str, Any]:
    return job.model_dump(mode="json")
