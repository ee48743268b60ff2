"""Faults through real worker processes (`python -m workers`, short leases): SIGKILL mid-job, SIGTERM
mid-job, Redis flushed, Redis stopped and restarted. Redis faults use a private redis-server."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from fluxstudio.config import load_settings
from fluxstudio.queue import Queue, redis_client
from fluxstudio.storage import LocalStorage
from fluxstudio.studio import jobs
from fluxstudio.studio.models import JobOptions
from fluxstudio.studio.users import User
from tests.fixtures.jobs import AssetMaker, PrivateRedis, worker_environ
from tests.fixtures.platform import WorkerProcess, wait_for
from workers import WorkerOptions, serve

pytestmark = pytest.mark.slow

FAST = ("--lease", "3", "--reconcile-every", "1", "--retry-base", "1")


async def _row(pool: asyncpg.Pool, job_id: str) -> asyncpg.Record:
    return await pool.fetchrow("SELECT status, attempt, released, worker FROM jobs WHERE id = $1", job_id)


async def _running_on(pool: asyncpg.Pool, job_id: str, worker: WorkerProcess) -> list[int]:
    """ffmpeg pids of `worker` once it runs the job and its ffmpeg has started."""
    row = await _row(pool, job_id)
    if row["status"] != "running" or not (row["worker"] or "").endswith(f":{worker.pid}"):
        return []
    return worker.children()


async def _status(pool: asyncpg.Pool, job_id: str, status: str) -> bool:
    return (await _row(pool, job_id))["status"] == status


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


async def _none_alive(pids: list[int]) -> bool:
    return not _alive(pids)


async def test_a_sigkilled_worker_is_replaced_and_its_ffmpeg_dies_with_it(
    pool: asyncpg.Pool,
    queue: Queue,
    owner: User,
    make_asset: AssetMaker,
    clips,
    start_worker,
    migrated_database_url: str,
    redis_url: str,
    media_root: Path,
    queue_name: str,
) -> None:
    asset_id = await make_asset(clips(duration=20.0))
    slow = worker_environ(migrated_database_url, redis_url, media_root, FFMPEG_PRESET="slower")
    doomed = start_worker(slow, *FAST, "--queue", queue_name)
    job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)
    ffmpeg = await wait_for(lambda: _running_on(pool, job.id, doomed), 30, "the first worker's ffmpeg")
    rescuer = start_worker(
        worker_environ(migrated_database_url, redis_url, media_root), *FAST, "--queue", queue_name
    )

    killed_at = time.monotonic()
    doomed.process.send_signal(signal.SIGKILL)
    await wait_for(lambda: _none_alive(ffmpeg), 3, "the killed worker's ffmpeg to die with it")
    await wait_for(lambda: _running_on(pool, job.id, rescuer), 60, "another worker to take the job over")
    assert time.monotonic() - killed_at < 60
    await wait_for(lambda: _status(pool, job.id, "succeeded"), 60, "the job to succeed")
    done = await jobs.get_job(pool, owner, job.id)
    assert done.attempts == 2 and done.error is None
    assert rescuer.process.poll() is None  # still serving


async def test_sigterm_hands_the_job_back_without_counting_an_attempt(
    pool: asyncpg.Pool,
    queue: Queue,
    owner: User,
    make_asset: AssetMaker,
    clips,
    start_worker,
    migrated_database_url: str,
    redis_url: str,
    media_root: Path,
    queue_name: str,
    storage: LocalStorage,
) -> None:
    asset_id = await make_asset(clips(duration=20.0))
    slow = worker_environ(migrated_database_url, redis_url, media_root, FFMPEG_PRESET="slower")
    worker = start_worker(slow, *FAST, "--grace", "1", "--queue", queue_name)
    job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=1)
    ffmpeg = await wait_for(lambda: _running_on(pool, job.id, worker), 30, "the worker's ffmpeg")

    worker.process.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(worker.process.wait, 20)
    assert exit_code == 0, worker.log()[-3000:]
    assert not _alive(ffmpeg)
    handed_back = await jobs.get_job(pool, owner, job.id)
    assert (handed_back.status, handed_back.attempts) == ("queued", 0)  # max_attempts=1 still allows a run
    assert await storage.list(f"hls/{asset_id}/") == []

    fast = worker_environ(migrated_database_url, redis_url, media_root)
    finisher = start_worker(fast, *FAST, "--burst", "--queue", queue_name)
    assert await asyncio.to_thread(finisher.process.wait, 60) == 0, finisher.log()[-3000:]
    done = await jobs.get_job(pool, owner, job.id)
    assert (done.status, done.attempts) == ("succeeded", 1)


async def test_redis_flushall_loses_no_queued_job(
    pool: asyncpg.Pool,
    owner: User,
    make_asset: AssetMaker,
    clips,
    private_redis: PrivateRedis,
    migrated_database_url: str,
    media_root: Path,
    queue_name: str,
    tmp_path: Path,
) -> None:
    queue = await Queue.connect(private_redis.url, queue_name=queue_name)
    try:
        asset_id = await make_asset(clips(duration=1.0))
        created = [
            await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)
            for _ in range(3)
        ]
        await private_redis.flushall()
        assert await queue.depth() == 0
    finally:
        await queue.aclose()
    settings = load_settings("worker", worker_environ(migrated_database_url, private_redis.url, media_root))
    options = WorkerOptions(burst=True, handle_signals=False, queue_name=queue_name, work_dir=tmp_path)
    assert await serve(settings, options) >= 3  # the reconciler woke them again
    for job in created:
        assert (await jobs.get_job(pool, owner, job.id)).status == "succeeded"


async def test_jobs_wait_while_redis_is_down_and_run_when_it_is_back(
    pool: asyncpg.Pool,
    owner: User,
    make_asset: AssetMaker,
    clips,
    private_redis: PrivateRedis,
    start_worker,
    migrated_database_url: str,
    media_root: Path,
    queue_name: str,
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    worker = start_worker(
        worker_environ(migrated_database_url, private_redis.url, media_root), *FAST, "--queue", queue_name
    )
    await wait_for(lambda: _true("worker_started" in worker.log()), 30, "the worker to start")
    private_redis.stop()
    queue = Queue(redis_client(private_redis.url), queue_name)
    try:
        job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)
    finally:
        await queue.aclose()
    assert job.status == "queued"  # accepted while Redis is down: the row waits
    await wait_for(lambda: _true("redis_unavailable" in worker.log()), 10, "the worker to notice")
    private_redis.start()
    await wait_for(lambda: _status(pool, job.id, "succeeded"), 60, "the job to run once Redis is back")
    assert worker.process.poll() is None, worker.log()[-3000:]
    assert worker.log().count("redis_unavailable") == 1  # logged once per outage, not per retry


async def _true(value: bool) -> bool:
    return value
