"""The worker's side of the job state machine: claim, lease, progress, publish, fail, hand back, reconcile.

Every write after the claim is fenced: `WHERE id = $1 AND attempt = $2 AND status = 'running'`, so a
worker that lost its lease, or whose job was cancelled or reclaimed, changes nothing and learns so from
the None/False it gets back. See `studio/jobs.py` for the states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from fluxstudio.errors import Conflict, Unavailable
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.queue import Queue
from fluxstudio.studio import webhooks
from fluxstudio.studio.assets import event_data
from fluxstudio.studio.jobs import JOB_COLUMNS, announce, job_from_row
from fluxstudio.studio.models import Job, JobError, JobOptions

#: pg_try_advisory_xact_lock key of the reconciler: "fluxrecn" as a signed 64-bit number.
RECONCILE_LOCK_KEY = int.from_bytes(b"fluxrecn", "big") - 2**63
#: pg_advisory_xact_lock key that serialises capped claims ("fluxclam"), so a cap is never overshot.
CLAIM_LOCK_KEY = int.from_bytes(b"fluxclam", "big") - 2**63

#: How many jobs of the job's user run now ($1: the job).
_RUNNING_OF_OWNER = """
SELECT count(*) FROM jobs o
JOIN assets a ON a.id = o.asset_id JOIN projects p ON p.id = a.project_id
WHERE o.status = 'running' AND p.user_id = (
    SELECT p2.user_id FROM jobs j
    JOIN assets a2 ON a2.id = j.asset_id JOIN projects p2 ON p2.id = a2.project_id
    WHERE j.id = $1 AND j.status = 'queued' AND (j.run_after IS NULL OR j.run_after <= now()))
"""
_FENCE = "j.id = $1 AND j.attempt = $2 AND j.status = 'running'"

log = get_logger()


@dataclass(frozen=True)
class Claim:
    """What a worker needs to run the job it just claimed; `attempt` is its fencing token."""

    job_id: str
    attempt: int
    asset_id: str
    options: JobOptions
    source_key: str | None
    media: dict[str, Any]
    attempts_used: int  # this one included; shutdown hand-backs not


class UserAtCapacity(Conflict):
    """The job is ready, but its user already runs the most jobs allowed: wake it again a little later.

    The worker defers the wake-up (arq `Retry`) and takes the next one, so another user's job goes
    ahead of the rest of this user's queue instead of waiting behind all of it.
    """

    code = "user_at_capacity"


@dataclass(frozen=True)
class RenditionRecord:
    name: str
    width: int | None
    height: int | None
    bandwidth: int
    average_bandwidth: int
    codecs: str
    frame_rate: float | None
    playlist_key: str


async def claim_job(
    pool: asyncpg.Pool,
    job_id: str,
    *,
    worker: str,
    lease_s: float,
    max_running_per_user: int | None = None,
) -> Claim | None:
    """Take a queued job; None if it is not (any more) queued or waits for its back-off to pass.

    With `max_running_per_user` (0 or None: no cap), a job whose user already runs that many raises
    `UserAtCapacity` and stays queued. Capped claims are serialised by a transaction lock (a few ms
    each, one per job start) so that two workers cannot both see the user below the cap.
    """
    async with pool.acquire() as connection, connection.transaction():
        if max_running_per_user:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", CLAIM_LOCK_KEY)
            if await connection.fetchval(_RUNNING_OF_OWNER, job_id) >= max_running_per_user:
                raise UserAtCapacity(f"the job's user already runs {max_running_per_user} jobs")
        row = await connection.fetchrow(
            "UPDATE jobs AS j SET status = 'running', attempt = attempt + 1,"
            " lease_until = now() + make_interval(secs => $3), worker = $2,"
            " started_at = coalesce(started_at, now()), progress = 0, error = NULL, run_after = NULL,"
            " updated_at = now()"
            " WHERE j.id = $1 AND j.status = 'queued' AND (j.run_after IS NULL OR j.run_after <= now())"
            " RETURNING j.attempt, j.released, j.asset_id, j.options",
            job_id,
            worker,
            float(lease_s),
        )
        if row is None:
            return None
        # A ready asset being transcoded again stays ready (and playable) until the new job succeeds.
        await connection.execute(
            "UPDATE assets SET status = 'processing', updated_at = now()"
            " WHERE id = $1 AND status IN ('uploaded', 'failed')",
            row["asset_id"],
        )
        asset = await connection.fetchrow(
            "SELECT source_key, media FROM assets WHERE id = $1", row["asset_id"]
        )
    return Claim(
        job_id=job_id,
        attempt=row["attempt"],
        asset_id=row["asset_id"],
        options=JobOptions(**row["options"]),
        source_key=asset["source_key"],
        media=asset["media"] or {},
        attempts_used=row["attempt"] - row["released"],
    )


async def load_job(pool: asyncpg.Pool, job_id: str) -> Job | None:
    """The job as the API shows it, without an owner check: for the worker that runs it."""
    row = await pool.fetchrow(f"SELECT {JOB_COLUMNS} FROM jobs j WHERE j.id = $1", job_id)
    return None if row is None else job_from_row(row)


async def renew_lease(pool: asyncpg.Pool, job_id: str, attempt: int, lease_s: float) -> bool:
    """Extend the lease; False when the job is no longer ours to run (cancelled, expired, reclaimed)."""
    done = await pool.fetchval(
        f"UPDATE jobs AS j SET lease_until = now() + make_interval(secs => $3), updated_at = now()"
        f" WHERE {_FENCE} RETURNING true",
        job_id,
        attempt,
        float(lease_s),
    )
    return bool(done)


async def record_progress(pool: asyncpg.Pool, job_id: str, attempt: int, progress: float) -> bool:
    """Store progress (callers throttle to about once a second); never moves it backwards."""
    done = await pool.fetchval(
        f"UPDATE jobs AS j SET progress = greatest(j.progress, $3), updated_at = now()"
        f" WHERE {_FENCE} RETURNING true",
        job_id,
        attempt,
        min(1.0, max(0.0, float(progress))),
    )
    return bool(done)


async def succeed(
    pool: asyncpg.Pool,
    job_id: str,
    attempt: int,
    *,
    renditions: Sequence[RenditionRecord],
    playback_key: str,
    poster_key: str | None = None,
    storyboard_key: str | None = None,
    mp4_key: str | None = None,
) -> Job | None:
    """Publish the result in one transaction: job succeeded, renditions, asset ready with its playback
    key. None when the fence says the job is no longer ours (the caller then deletes its output)."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "UPDATE jobs AS j SET status = 'succeeded', progress = 1, finished_at = now(),"
            f" lease_until = NULL, error = NULL, updated_at = now() WHERE {_FENCE} RETURNING {JOB_COLUMNS}",
            job_id,
            attempt,
        )
        if row is None:
            return None
        asset_id = row["asset_id"]
        # A re-transcode replaces the asset's renditions; the previous job's files stay until the asset goes.
        await connection.execute("DELETE FROM renditions WHERE asset_id = $1", asset_id)
        await connection.executemany(
            "INSERT INTO renditions (id, job_id, asset_id, name, width, height, bandwidth,"
            " average_bandwidth, codecs, frame_rate, playlist_key)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [
                (new_id("ren"), job_id, asset_id, r.name, r.width, r.height, r.bandwidth,
                 r.average_bandwidth, r.codecs, r.frame_rate, r.playlist_key)
                for r in renditions
            ],
        )
        await connection.execute(
            "UPDATE assets SET status = 'ready', playback_key = $2, error = NULL, updated_at = now(),"
            " playable = true, poster_key = $3, storyboard_key = $4, mp4_key = $5"
            " WHERE id = $1",
            asset_id,
            playback_key,
            poster_key,
            storyboard_key,
            mp4_key,
        )
        await connection.execute(
            "UPDATE jobs SET playable_at = coalesce(playable_at, now()) WHERE id = $1", job_id
        )
        job = job_from_row(row)
        # The outbox: these events commit, or vanish, with the result they report.
        await webhooks.record_asset_event(connection, asset_id, "job.succeeded", job.model_dump(mode="json"))
        ready = await event_data(connection, asset_id)
        await webhooks.record_asset_event(connection, asset_id, "asset.ready", ready)
    return job


async def mark_playable(pool: asyncpg.Pool, job_id: str, attempt: int, playback_key: str) -> bool:
    """Watch while transcoding: the running job's growing stream becomes the asset's playback URL.

    Only for an asset that has nothing playable yet: a ready asset being transcoded again keeps playing
    its finished stream until the new job succeeds. Fenced like every worker write. True when the job's
    stream is now the one the asset plays (or already was).
    """
    async with pool.acquire() as connection, connection.transaction():
        asset_id = await connection.fetchval(
            f"UPDATE jobs AS j SET playable_at = coalesce(j.playable_at, now()) WHERE {_FENCE}"
            " RETURNING j.asset_id",
            job_id,
            attempt,
        )
        if asset_id is None:
            return False
        done = await connection.fetchval(
            "UPDATE assets SET playback_key = $2, playable = true, updated_at = now()"
            " WHERE id = $1 AND (playback_key IS NULL OR playback_key = $2) RETURNING true",
            asset_id,
            playback_key,
        )
        if not done:
            await connection.execute("UPDATE jobs SET playable_at = NULL WHERE id = $1", job_id)
    return bool(done)


async def take_down(pool: asyncpg.Pool, job_id: str, attempt: int, prefix: str) -> bool:
    """A failed, cancelled or superseded attempt's partial stream goes: the asset no longer points into
    it (its playback_url is null again). The job's output prefix is shared by its attempts, so when a
    later attempt runs (or the job succeeded) the prefix is that attempt's and nothing is touched.
    True when the prefix is this attempt's to delete."""
    async with pool.acquire() as connection, connection.transaction():
        job = await connection.fetchrow(
            "SELECT asset_id, status, attempt FROM jobs WHERE id = $1 FOR UPDATE", job_id
        )
        if job is None:
            return True  # the job (and its asset) are gone: whatever is left is nobody's
        if job["status"] == "succeeded" or (job["status"] == "running" and job["attempt"] != attempt):
            return False
        await connection.execute("UPDATE jobs SET playable_at = NULL WHERE id = $1", job_id)
        await connection.execute(
            "UPDATE assets SET playback_key = NULL, playable = false, updated_at = now()"
            " WHERE id = $1 AND playback_key LIKE $2 || '%' AND status <> 'ready'",
            job["asset_id"],
            prefix,
        )
    return True


async def fail(
    pool: asyncpg.Pool, job_id: str, attempt: int, error: JobError, *, retry_in_s: float | None = None
) -> Job | None:
    """A failed attempt. With `retry_in_s` and attempts left the job goes back to `queued`, held back
    until then (the caller wakes it with that delay); otherwise it and its asset are `failed`."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "UPDATE jobs AS j SET"
            " status = CASE WHEN $4::float8 IS NOT NULL AND j.attempt - j.released < j.max_attempts"
            "   THEN 'queued' ELSE 'failed' END,"
            " run_after = CASE WHEN $4::float8 IS NOT NULL AND j.attempt - j.released < j.max_attempts"
            "   THEN now() + make_interval(secs => $4::float8) END,"
            " finished_at = CASE WHEN $4::float8 IS NOT NULL AND j.attempt - j.released < j.max_attempts"
            "   THEN NULL ELSE now() END,"
            f" lease_until = NULL, worker = NULL, error = $3, updated_at = now() WHERE {_FENCE}"
            f" RETURNING {JOB_COLUMNS}",
            job_id,
            attempt,
            error.model_dump(),
            retry_in_s,
        )
        if row is not None and row["status"] == "failed":
            await _fail_asset(connection, row["asset_id"], error)
            await _failed_events(connection, row)
    return None if row is None else job_from_row(row)


async def _fail_asset(connection: asyncpg.Connection, asset_id: str, error: JobError) -> None:
    # An asset that is already playable (an earlier job) stays ready: a failed re-transcode loses nothing.
    # A failed asset plays nothing: a partial stream it pointed into (watch while transcoding) goes.
    await connection.execute(
        "UPDATE assets SET status = 'failed', error = $2, updated_at = now(), playback_key = NULL,"
        " playable = false WHERE id = $1 AND status <> 'ready'",
        asset_id,
        error.model_dump(),
    )


async def _failed_events(connection: asyncpg.Connection, row: asyncpg.Record) -> None:
    """job.failed, and asset.failed when the asset failed with it (a ready asset stays ready)."""
    asset_id = row["asset_id"]
    job = job_from_row(row).model_dump(mode="json")
    await webhooks.record_asset_event(connection, asset_id, "job.failed", job)
    data = await event_data(connection, asset_id)
    if data["status"] == "failed":
        await webhooks.record_asset_event(connection, asset_id, "asset.failed", data)


async def release(pool: asyncpg.Pool, job_id: str, attempt: int) -> Job | None:
    """Hand a running job back to the queue without counting the attempt (graceful shutdown)."""
    row = await pool.fetchrow(
        "UPDATE jobs AS j SET status = 'queued', released = j.released + 1, lease_until = NULL,"
        f" worker = NULL, progress = 0, updated_at = now() WHERE {_FENCE} RETURNING {JOB_COLUMNS}",
        job_id,
        attempt,
    )
    return None if row is None else job_from_row(row)


@dataclass(frozen=True)
class Reconciled:
    requeued: int = 0  # expired leases handed back to the queue
    failed: int = 0  # expired leases out of attempts
    rewoken: int = 0  # queued rows whose wake-up Redis had lost
    skipped: bool = False  # another reconciler held the lock


async def reconcile(pool: asyncpg.Pool, queue: Queue | None, *, batch: int = 500) -> Reconciled:
    """Repair what Redis and dead workers leave behind. Safe to run anywhere, any time, concurrently.

    A running row whose lease has expired belongs to a worker that died or hung: back to `queued` (the
    attempt counts), or `failed` once the job is out of attempts. Every queued row whose wake-up Redis
    does not hold (flushed, restarted without persistence, down or hung when the job was created) is
    woken again, deferred until its back-off ends; the rows are read `batch` at a time, oldest first,
    and checked against Redis one pipelined round trip per batch.
    """
    async with pool.acquire() as connection, connection.transaction():
        if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", RECONCILE_LOCK_KEY):
            return Reconciled(skipped=True)
        expired = await connection.fetch(
            "UPDATE jobs AS j SET"
            " status = CASE WHEN j.attempt - j.released >= j.max_attempts THEN 'failed' ELSE 'queued' END,"
            " finished_at = CASE WHEN j.attempt - j.released >= j.max_attempts THEN now() END,"
            " lease_until = NULL, worker = NULL, progress = 0, updated_at = now(),"
            " error = jsonb_build_object('code', 'lease_expired', 'message',"
            "   'the worker running attempt ' || j.attempt || ' stopped renewing its lease')"
            f" WHERE j.status = 'running' AND j.lease_until < now() RETURNING {JOB_COLUMNS}"
        )
        for row in expired:
            if row["status"] == "failed":
                await _fail_asset(connection, row["asset_id"], JobError(**row["error"]))
                await _failed_events(connection, row)
    jobs = [job_from_row(row) for row in expired]
    for job in jobs:
        log.warning("job_lease_expired", job_id=job.id, status=job.status)
        await announce(queue, job)
    rewoken = await _rewake_queued(pool, queue, batch) if queue is not None else 0
    if rewoken:
        log.info("jobs_rewoken", count=rewoken)
    failed = sum(job.status == "failed" for job in jobs)
    return Reconciled(requeued=len(jobs) - failed, failed=failed, rewoken=rewoken)


async def _rewake_queued(pool: asyncpg.Pool, queue: Queue, batch: int) -> int:
    """Wake every queued row whose wake-up Redis lacks; stops quietly if Redis is away (the next run,
    once it is back, finishes the work)."""
    rewoken = 0
    after: tuple[Any, str] | None = None
    try:
        while True:
            rows = await pool.fetch(
                "SELECT id, attempt, created_at,"
                " greatest(0, extract(epoch FROM run_after - now()))::float8 AS wait_s"
                " FROM jobs WHERE status = 'queued'"
                " AND ($1::timestamptz IS NULL OR (created_at, id) > ($1::timestamptz, $2::text))"
                " ORDER BY created_at, id LIMIT $3",
                after[0] if after else None,
                after[1] if after else "",
                batch,
            )
            held = await queue.holding([(row["id"], row["attempt"]) for row in rows])
            for row, present in zip(rows, held, strict=True):
                if not present:
                    await queue.wake(row["id"], row["attempt"], defer_s=row["wait_s"] or None)
                    rewoken += 1
            if len(rows) < batch:
                return rewoken
            after = (rows[-1]["created_at"], rows[-1]["id"])
    except Unavailable:
        return rewoken
