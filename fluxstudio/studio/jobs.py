"""Transcode jobs: the state machine, in one place, for the API, MCP, the CLI and the workers alike.

    queued ──claim──▶ running ──succeed──▶ succeeded
      ▲                 │ ├──fail────────▶ failed      (unreadable media, or out of attempts)
      │                 │ └──fail(retry)─▶ queued      (transient: back-off in run_after)
      ├──release────────┘                              (shutdown hand-back: not a failed attempt)
      ├──reconcile: lease expired (or ─▶ failed after max_attempts)
    queued/running ──cancel──▶ cancelled

This module is the owner's side (create, read, cancel); `studio/leases.py` is the worker's side.

PostgreSQL owns the state; Redis (fluxstudio.queue) only wakes workers and carries events. `attempt`
counts claims and is the fencing token: every write of a worker says `WHERE attempt = $a AND status =
'running'`, so a worker that lost its lease (or whose job was cancelled) can change nothing. Because a
token must never be handed out twice, a shutdown hand-back does not decrement it; `released` counts the
hand-backs and the attempts a job has used are `attempt - released`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import asyncpg

from fluxstudio.errors import Conflict, Invalid, NotFound, Unavailable
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.media import LadderOptions
from fluxstudio.queue import Queue, asset_channel
from fluxstudio.studio import webhooks
from fluxstudio.studio.models import Job, JobError, JobOptions
from fluxstudio.studio.users import User

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_COLUMNS = (
    "j.id, j.asset_id, j.kind, j.status, j.progress, j.attempt, j.released, j.options, j.error,"
    " j.created_at, j.started_at, j.finished_at"
)
_OWNED = "JOIN assets a ON a.id = j.asset_id JOIN projects p ON p.id = a.project_id"

#: How long a request waits for Redis after its row is committed (the wake-up, a cancel message). A
#: Redis that hangs must not hang the request: what did not get through by then finishes in the
#: background or is left to the reconciler, which wakes every queued row Redis lacks.
REDIS_BUDGET_S = 1.0

log = get_logger()
_late: set[asyncio.Task[object]] = set()  # Redis calls still going after their budget ran out


async def within_budget(call: Awaitable[object], what: str, job_id: str) -> bool:
    """Run `call` for at most REDIS_BUDGET_S; True if it finished in time (whatever it returned or
    raised is its own business). Left running, it finishes on its own: every Redis command has a socket
    timeout, so nothing is left behind for long."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=REDIS_BUDGET_S)
    if done:
        return True
    log.warning("redis_slow", job_id=job_id, waiting_for=what, left_to="the background and the reconciler")
    _late.add(task)
    task.add_done_callback(_forget)
    return False


def _forget(task: asyncio.Task[object]) -> None:
    _late.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"


def job_from_row(row: asyncpg.Record) -> Job:
    error = row["error"]
    return Job(
        id=row["id"],
        asset_id=row["asset_id"],
        kind=row["kind"],
        status=row["status"],
        progress=min(1.0, max(0.0, row["progress"])),
        attempts=row["attempt"] - row["released"],
        options=JobOptions(**row["options"]),
        error=JobError(code=error.get("code", "error"), message=error.get("message", "")) if error else None,
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def ladder_options(options: JobOptions) -> LadderOptions:
    """The media layer's options; Invalid (422) for an unknown rendition name."""
    renditions = tuple(options.renditions) if options.renditions is not None else None
    return LadderOptions(renditions, options.segment_seconds, options.segment_format, options.mp4)


def output_prefix(asset_id: str, job_id: str) -> str:
    """Where a job writes its HLS output. Per job, so a retry or a second job never mixes files with
    another, and deleting one job's partial output cannot touch a published stream. Everything of an
    asset's streams is under `hls/{asset_id}/`."""
    return f"hls/{asset_id}/{job_id}/"


# -- the API side ---------------------------------------------------------------------------------


async def create_job(
    pool: asyncpg.Pool,
    queue: Queue | None,
    user: User,
    asset_id: str,
    options: JobOptions,
    *,
    idempotency_key: str | None = None,
    max_attempts: int,
) -> Job:
    """Insert the job (`queued`) and wake a worker. Redis down: the row waits for the reconciler.

    The same `idempotency_key` for the same asset returns the same job; with other options it is a
    Conflict, since silently returning a job that does something else would be worse.
    """
    ladder_options(options)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise Invalid("Idempotency-Key must be 1 to 255 characters")
    asset = await pool.fetchrow(
        "SELECT a.source_key, a.media FROM assets a JOIN projects p ON p.id = a.project_id"
        " WHERE a.id = $1 AND p.user_id = $2",
        asset_id,
        user.id,
    )
    if asset is None:
        raise NotFound("asset not found")
    media = asset["media"] or {}
    if asset["source_key"] is None or not (media.get("has_video") or media.get("has_audio")):
        raise Conflict("the asset has no stored audio or video to transcode")
    wanted = options.model_dump(mode="json")
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "INSERT INTO jobs AS j (id, asset_id, options, max_attempts, idempotency_key)"
            " VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (asset_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
            f" RETURNING {JOB_COLUMNS}",
            new_id("job"),
            asset_id,
            wanted,
            max_attempts,
            idempotency_key,
        )
        if row is None:
            row = await connection.fetchrow(
                f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.asset_id = $1 AND j.idempotency_key = $2",
                asset_id,
                idempotency_key,
            )
            if row["options"] != wanted:
                raise Conflict("this Idempotency-Key was already used with other options")
        else:
            await connection.execute(
                "UPDATE assets SET status = 'processing', error = NULL, updated_at = now()"
                " WHERE id = $1 AND status IN ('uploaded', 'failed')",
                asset_id,
            )
    job = job_from_row(row)
    if job.status == "queued":  # a retried request re-wakes too: the wake-up collapses if it exists
        await within_budget(_wake_and_announce(queue, job, row["attempt"]), "wake-up", job.id)
    return job


async def get_job(pool: asyncpg.Pool, user: User, job_id: str) -> Job:
    row = await pool.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs j {_OWNED} WHERE j.id = $1 AND p.user_id = $2",
                              job_id, user.id)
    if row is None:
        raise NotFound("job not found")
    return job_from_row(row)


async def list_jobs(
    pool: asyncpg.Pool, user: User, *, asset_id: str | None = None, status: str | None = None
) -> list[Job]:
    """The user's jobs, newest first."""
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    rows = await pool.fetch(
        f"SELECT {JOB_COLUMNS} FROM jobs j {_OWNED} WHERE p.user_id = $1"
        " AND ($2::text IS NULL OR j.asset_id = $2) AND ($3::text IS NULL OR j.status = $3)"
        " ORDER BY j.created_at DESC, j.id LIMIT 1000",
        user.id,
        asset_id,
        status,
    )
    return [job_from_row(row) for row in rows]


async def cancel_job(pool: asyncpg.Pool, queue: Queue | None, user: User, job_id: str) -> Job:
    """Cancel a queued or running job; Conflict once it has finished.

    The row says `cancelled` first: that is the truth, and a worker's next lease renewal sees it. The
    cancel message only makes the worker notice at once instead of within a third of its lease.
    """
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "WITH old AS ("
            f"  SELECT j.id, j.status FROM jobs j {_OWNED} WHERE j.id = $1 AND p.user_id = $2 FOR UPDATE OF j"
            ") UPDATE jobs AS j SET status = 'cancelled', finished_at = now(), lease_until = NULL,"
            "   run_after = NULL, updated_at = now()"
            " FROM old WHERE j.id = old.id AND old.status IN ('queued', 'running')"
            f" RETURNING {JOB_COLUMNS}, old.status AS was",
            job_id,
            user.id,
        )
        if row is not None:
            await _settle_asset(connection, row["asset_id"])
            await webhooks.record_event(
                connection, user.id, "job.cancelled", job_from_row(row).model_dump(mode="json")
            )
    if row is None:
        job = await get_job(pool, user, job_id)  # NotFound for someone else's job
        # "is already cancelled", "has already succeeded/failed"
        raise Conflict(f"the job {'is' if job.status == 'cancelled' else 'has'} already {job.status}")
    job = job_from_row(row)
    log.info("job_cancelled", job_id=job_id, was=row["was"])
    if row["was"] == "running" and queue is not None:
        await within_budget(_request_cancel(queue, job_id), "cancel message", job_id)
    await within_budget(announce(queue, job), "status event", job_id)
    return job


async def _request_cancel(queue: Queue, job_id: str) -> None:
    with contextlib.suppress(Unavailable):
        await queue.request_cancel(job_id)


async def _settle_asset(connection: asyncpg.Connection, asset_id: str) -> None:
    # A cancelled job leaves an asset that was waiting for it as it was before: uploaded, with nothing to
    # play (its partial stream, if it was playable, is being removed by the worker).
    await connection.execute(
        "UPDATE assets SET status = 'uploaded', playback_key = NULL, playable = false, updated_at = now()"
        " WHERE id = $1 AND status = 'processing'"
        " AND NOT EXISTS (SELECT 1 FROM jobs WHERE asset_id = $1 AND status IN ('queued', 'running'))",
        asset_id,
    )


async def wake(queue: Queue | None, job_id: str, attempt: int, *, defer_s: float | None = None) -> bool:
    """Wake a worker for a queued row; False when Redis is down (the reconciler re-wakes it later)."""
    if queue is None:
        return False
    try:
        await queue.wake(job_id, attempt, defer_s=defer_s)
    except Unavailable:
        log.warning("job_wake_deferred", job_id=job_id, reason="redis unavailable")
        return False
    return True


async def _wake_and_announce(queue: Queue | None, job: Job, attempt: int) -> None:
    await wake(queue, job.id, attempt)
    await announce_to_asset(queue, job)


async def announce_to_asset(queue: Queue | None, job: Job) -> None:
    """Tell the asset's event streams that it has a new job to follow (they poll PostgreSQL otherwise)."""
    if queue is None:
        return
    with contextlib.suppress(Unavailable):
        event = {"event": "job", "data": job.model_dump(mode="json")}
        await queue.announce(asset_channel(job.asset_id), event)


async def announce(queue: Queue | None, job: Job) -> None:
    """Publish a status change to the job's live readers; they re-read PostgreSQL if this is lost."""
    if queue is None:
        return
    with contextlib.suppress(Unavailable):
        await queue.publish(job.id, {"event": "status", "data": job.model_dump(mode="json")})
