"""The job state machine against real PostgreSQL and Redis: ownership, idempotency, claims and fencing,
hand-backs, retries with back-off, cancel, and the reconciler."""

from __future__ import annotations

import asyncpg
import pytest

from fluxstudio.errors import Conflict, Invalid, NotFound
from fluxstudio.queue import ProgressHub, Queue, cancel_channel, redis_client
from fluxstudio.studio import jobs, leases, progress
from fluxstudio.studio.models import JobError, JobOptions
from fluxstudio.studio.users import User
from tests.fixtures.jobs import AssetMaker
from tests.fixtures.platform import wait_for

ERROR = JobError(code="media_error", message="ffmpeg fell over")


@pytest.fixture
async def asset_id(make_asset: AssetMaker, clips) -> str:
    return await make_asset(clips(duration=1.0))


async def _job(pool, queue, owner, asset_id, **kwargs):
    options = kwargs.pop("options", JobOptions())
    return await jobs.create_job(
        pool, queue, owner, asset_id, options, max_attempts=kwargs.pop("max_attempts", 3), **kwargs
    )


async def test_create_wakes_a_worker_and_only_the_owner_sees_the_job(
    pool: asyncpg.Pool, queue: Queue, owner: User, stranger: User, asset_id: str
) -> None:
    job = await _job(
        pool, queue, owner, asset_id, options=JobOptions(renditions=["240p"], segment_format="ts")
    )
    assert (job.status, job.attempts, job.progress) == ("queued", 0, 0.0)
    assert job.options.renditions == ["240p"] and job.options.segment_format == "ts"
    assert await queue.holds(job.id, 0)
    assert (await jobs.get_job(pool, owner, job.id)).id == job.id
    assert [j.id for j in await jobs.list_jobs(pool, owner, asset_id=asset_id)] == [job.id]
    assert await jobs.list_jobs(pool, owner, status="running") == []
    assert await pool.fetchval("SELECT status FROM assets WHERE id = $1", asset_id) == "processing"
    with pytest.raises(NotFound):
        await jobs.get_job(pool, stranger, job.id)
    assert await jobs.list_jobs(pool, stranger) == []
    with pytest.raises(NotFound):
        await _job(pool, queue, stranger, asset_id)
    with pytest.raises(NotFound):
        await jobs.cancel_job(pool, queue, stranger, job.id)
    with pytest.raises(Invalid):
        await jobs.list_jobs(pool, owner, status="sleeping")


async def test_unknown_rendition_is_invalid(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str
) -> None:
    with pytest.raises(Invalid, match="999p"):
        await _job(pool, queue, owner, asset_id, options=JobOptions(renditions=["999p"]))
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE asset_id = $1", asset_id) == 0


async def test_idempotency_key_returns_the_same_job(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str
) -> None:
    first = await _job(pool, queue, owner, asset_id, idempotency_key="k1")
    again = await _job(pool, queue, owner, asset_id, idempotency_key="k1")
    other = await _job(pool, queue, owner, asset_id, idempotency_key="k2")
    assert again.id == first.id and other.id != first.id
    with pytest.raises(Conflict, match="other options"):
        await _job(pool, queue, owner, asset_id, idempotency_key="k1", options=JobOptions(segment_seconds=6))
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE asset_id = $1", asset_id) == 2


async def test_redis_down_the_row_waits(pool: asyncpg.Pool, owner: User, asset_id: str) -> None:
    dead = Queue(redis_client("redis://127.0.0.1:1/0"))
    job = await _job(pool, dead, owner, asset_id)
    assert job.status == "queued"
    assert (await jobs.get_job(pool, owner, job.id)).status == "queued"
    await dead.aclose()


async def test_claim_fences_every_later_write(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str
) -> None:
    job = await _job(pool, queue, owner, asset_id)
    claim = await leases.claim_job(pool, job.id, worker="w1", lease_s=30)
    assert claim is not None and claim.attempt == 1 and claim.attempts_used == 1
    assert claim.source_key and claim.media["has_video"]
    assert await leases.claim_job(pool, job.id, worker="w2", lease_s=30) is None  # claimed once only
    assert await leases.renew_lease(pool, job.id, 1, 30)
    assert await leases.record_progress(pool, job.id, 1, 0.5)
    assert await leases.record_progress(pool, job.id, 1, 0.2)  # accepted but never backwards
    assert (await jobs.get_job(pool, owner, job.id)).progress == 0.5

    # The lease runs out (the worker hung); the reconciler hands the job to someone else.
    await pool.execute("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1", job.id)
    done = await leases.reconcile(pool, queue)
    assert done.requeued == 1 and await queue.holds(job.id, 1)
    second = await leases.claim_job(pool, job.id, worker="w2", lease_s=30)
    assert second is not None and second.attempt == 2

    # The first worker wakes up: nothing it writes lands.
    assert not await leases.renew_lease(pool, job.id, 1, 30)
    assert not await leases.record_progress(pool, job.id, 1, 0.9)
    assert await leases.fail(pool, job.id, 1, ERROR) is None
    assert await leases.release(pool, job.id, 1) is None
    assert await leases.succeed(pool, job.id, 1, renditions=[], playback_key="x/master.m3u8") is None
    row = await pool.fetchrow("SELECT status, worker, progress FROM jobs WHERE id = $1", job.id)
    assert tuple(row) == ("running", "w2", 0.0)

    rendition = leases.RenditionRecord(
        "240p",
        320,
        240,
        500_000,
        400_000,
        "avc1.64000d,mp4a.40.2",
        30.0,
        f"hls/{asset_id}/{job.id}/240p/index.m3u8",
    )
    done_job = await leases.succeed(
        pool, job.id, 2, renditions=[rendition], playback_key=f"hls/{asset_id}/{job.id}/master.m3u8"
    )
    assert done_job is not None and (done_job.status, done_job.progress, done_job.attempts) == (
        "succeeded",
        1,
        2,
    )
    asset = await pool.fetchrow("SELECT status, playback_key FROM assets WHERE id = $1", asset_id)
    assert asset["status"] == "ready" and asset["playback_key"].endswith(f"{job.id}/master.m3u8")
    assert await pool.fetchval("SELECT name FROM renditions WHERE job_id = $1", job.id) == "240p"
    with pytest.raises(Conflict, match=r"^the job has already succeeded$"):
        await jobs.cancel_job(pool, queue, owner, job.id)


async def test_release_hands_back_without_counting_an_attempt(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str
) -> None:
    job = await _job(pool, queue, owner, asset_id, max_attempts=1)
    claim = await leases.claim_job(pool, job.id, worker="w1", lease_s=30)
    released = await leases.release(pool, job.id, claim.attempt)
    assert released is not None and (released.status, released.attempts) == ("queued", 0)
    again = await leases.claim_job(pool, job.id, worker="w2", lease_s=30)
    # A new fencing token, yet the job still has its one attempt.
    assert again.attempt == 2 and again.attempts_used == 1


async def test_transient_failure_retries_after_back_off_then_fails(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str
) -> None:
    job = await _job(pool, queue, owner, asset_id, max_attempts=2)
    claim = await leases.claim_job(pool, job.id, worker="w1", lease_s=30)
    retried = await leases.fail(pool, job.id, claim.attempt, ERROR, retry_in_s=60)
    assert retried.status == "queued" and retried.error == ERROR
    assert await leases.claim_job(pool, job.id, worker="w1", lease_s=30) is None  # held back
    await pool.execute("UPDATE jobs SET run_after = now() WHERE id = $1", job.id)
    claim = await leases.claim_job(pool, job.id, worker="w1", lease_s=30)
    assert claim.attempts_used == 2
    failed = await leases.fail(pool, job.id, claim.attempt, ERROR, retry_in_s=60)
    assert (failed.status, failed.attempts) == ("failed", 2) and failed.finished_at is not None
    asset = await pool.fetchrow("SELECT status, error FROM assets WHERE id = $1", asset_id)
    assert asset["status"] == "failed" and asset["error"]["code"] == "media_error"


async def test_reconcile_rewakes_lost_wake_ups_and_fails_exhausted_leases(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str
) -> None:
    lost = await _job(pool, queue, owner, asset_id)
    await queue.redis.delete(f"arq:job:{lost.id}:0")  # as after FLUSHALL
    assert not await queue.holds(lost.id, 0)
    exhausted = await _job(pool, queue, owner, asset_id, max_attempts=1)
    await leases.claim_job(pool, exhausted.id, worker="dead", lease_s=30)
    await pool.execute(
        "UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1", exhausted.id
    )

    done = await leases.reconcile(pool, queue)
    assert done.failed == 1 and done.rewoken >= 1
    assert await queue.holds(lost.id, 0)
    failed = await jobs.get_job(pool, owner, exhausted.id)
    assert failed.status == "failed" and failed.error.code == "lease_expired"
    assert (await leases.reconcile(pool, queue)).rewoken == 0  # nothing left to repair


async def test_cancel_queued_and_running_jobs(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str, redis_url: str
) -> None:
    queued = await _job(pool, queue, owner, asset_id)
    cancelled = await jobs.cancel_job(pool, queue, owner, queued.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert await leases.claim_job(pool, queued.id, worker="w", lease_s=30) is None
    with pytest.raises(Conflict, match=r"^the job is already cancelled$"):
        await jobs.cancel_job(pool, queue, owner, queued.id)
    assert await pool.fetchval("SELECT status FROM assets WHERE id = $1", asset_id) == "uploaded"

    running = await _job(pool, queue, owner, asset_id)
    claim = await leases.claim_job(pool, running.id, worker="w", lease_s=30)
    hub = ProgressHub(redis_url)
    await hub.start()
    try:
        assert await hub.wait_connected(5)
        async with hub.listen(cancel_channel(queue.queue_name)) as requests:
            await jobs.cancel_job(pool, queue, owner, running.id)
            assert await wait_for(lambda: anext(requests), 5, "the cancel request") == running.id
    finally:
        await hub.aclose()
    assert not await leases.renew_lease(pool, running.id, claim.attempt, 30)  # the worker learns it too


async def test_one_reconciler_at_a_time(pool: asyncpg.Pool, queue: Queue) -> None:
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT pg_advisory_xact_lock($1)", leases.RECONCILE_LOCK_KEY)
        assert (await leases.reconcile(pool, queue)).skipped
    assert not (await leases.reconcile(pool, queue)).skipped


async def test_events_of_a_finished_job_end_at_once_and_others_get_nothing(
    pool: asyncpg.Pool, queue: Queue, owner: User, stranger: User, asset_id: str, redis_url: str
) -> None:
    job = await _job(pool, queue, owner, asset_id)
    await jobs.cancel_job(pool, queue, owner, job.id)
    hub = ProgressHub(redis_url)  # never started: a finished job needs no subscription
    assert [(kind, data["status"]) async for kind, data in progress.events(pool, hub, owner, job.id)] == [
        ("end", "cancelled")
    ]
    with pytest.raises(NotFound):
        await anext(progress.events(pool, hub, stranger, job.id))


async def test_events_notice_a_change_redis_never_announced(
    pool: asyncpg.Pool, queue: Queue, owner: User, asset_id: str, redis_url: str
) -> None:
    job = await _job(pool, queue, owner, asset_id)
    hub = ProgressHub(redis_url)
    await hub.start()
    try:
        stream = progress.events(pool, hub, owner, job.id, recheck_s=0.2)
        assert (await anext(stream))[1]["status"] == "queued"
        # The status changes in PostgreSQL but its announcement is lost (as while Redis restarts).
        await pool.execute("UPDATE jobs SET status = 'failed', finished_at = now() WHERE id = $1", job.id)
        rest = [(kind, data["status"]) async for kind, data in stream]
        assert rest == [("status", "failed"), ("end", "failed")]
    finally:
        await hub.aclose()
