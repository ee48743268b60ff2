"""The lost wake-up: a worker that dies after taking a job's arq wake-up and before claiming the row.

arq keeps a taken wake-up "in progress" until its key expires. The wake-up is its own short arq job
(claim, then hand the transcode to a task), so that key lives WAKE_TIMEOUT_S + 10 s, whatever
JOB_TIMEOUT_SECONDS is; once it expires the wake-up, still in the queue, goes to another worker. Here
JOB_TIMEOUT_SECONDS is 7200, a worker is SIGKILLed at exactly that point (tests/fixtures/doomed_worker.py),
and another worker must finish the job within 60 s of the kill.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from fluxstudio.queue import Queue
from fluxstudio.studio import jobs
from fluxstudio.studio.models import JobOptions
from fluxstudio.studio.users import User
from tests.fixtures.jobs import AssetMaker, worker_environ
from tests.fixtures.platform import wait_for

pytestmark = pytest.mark.slow


async def _status(pool: asyncpg.Pool, job_id: str, status: str) -> bool:
    return await pool.fetchval("SELECT status FROM jobs WHERE id = $1", job_id) == status


async def test_a_worker_killed_between_wake_up_and_claim_delays_the_job_under_a_minute(
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
    asset_id = await make_asset(clips(duration=1.0))
    env = worker_environ(migrated_database_url, redis_url, media_root, JOB_TIMEOUT_SECONDS="7200")
    doomed = start_worker(env, queue_name, module="tests.fixtures.doomed_worker")
    await wait_for(lambda: "worker_started" in doomed.log(), 60, "the doomed worker to start")
    job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)
    assert await asyncio.to_thread(doomed.process.wait, 60) == -signal.SIGKILL
    killed_at = time.monotonic()
    text = doomed.log()
    assert "doomed_worker_dies" in text and "job_claimed" not in text
    row = await pool.fetchrow("SELECT status, attempt FROM jobs WHERE id = $1", job.id)
    assert (row["status"], row["attempt"]) == ("queued", 0)  # the wake-up was taken, the row never claimed
    assert await queue.holds(job.id, 0)  # and the wake-up is stuck "in progress" in Redis

    rescuer = start_worker(env, "--lease", "3", "--reconcile-every", "1", "--queue", queue_name)
    await wait_for(lambda: _status(pool, job.id, "succeeded"), 60, "another worker to finish the job")
    assert time.monotonic() - killed_at <= 60
    done = await jobs.get_job(pool, owner, job.id)
    assert (done.attempts, done.error) == (1, None)  # one claim: the duplicate-free recovery
    assert rescuer.log().count("job_claimed") == 1
