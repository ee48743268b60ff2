"""The per-user cap in the claim (MAX_RUNNING_JOBS_PER_USER), against PostgreSQL: a job whose user runs
enough stays queued and says so, other users' jobs are claimed meanwhile, and claims made at the same
instant by many workers never overshoot the cap."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from fluxstudio.queue import Queue
from fluxstudio.studio import jobs, leases
from fluxstudio.studio.models import JobOptions
from fluxstudio.studio.users import User
from tests.fixtures.jobs import AssetMaker


async def _queued(pool, queue, user, make_asset, clip, count: int) -> list[str]:
    made = []
    for _ in range(count):
        asset_id = await make_asset(clip, user)
        made.append((await jobs.create_job(pool, queue, user, asset_id, JobOptions(), max_attempts=1)).id)
    return made


async def test_a_user_at_the_cap_waits_and_others_go_ahead(
    pool: asyncpg.Pool, queue: Queue, owner: User, stranger: User, make_asset: AssetMaker, clips
) -> None:
    clip = clips(duration=1.0, size="160x120")
    first, second = await _queued(pool, queue, owner, make_asset, clip, 2)
    (other,) = await _queued(pool, queue, stranger, make_asset, clip, 1)
    assert await leases.claim_job(pool, first, worker="w", lease_s=30, max_running_per_user=1)
    with pytest.raises(leases.UserAtCapacity):
        await leases.claim_job(pool, second, worker="w", lease_s=30, max_running_per_user=1)
    assert (await jobs.get_job(pool, owner, second)).status == "queued"
    assert await leases.claim_job(pool, other, worker="w", lease_s=30, max_running_per_user=1)
    # No cap (0 or None): the same claim goes through.
    assert await leases.claim_job(pool, second, worker="w", lease_s=30, max_running_per_user=0)


async def test_simultaneous_claims_never_overshoot_the_cap(
    pool: asyncpg.Pool, queue: Queue, owner: User, make_asset: AssetMaker, clips
) -> None:
    clip = clips(duration=1.0, size="160x120")
    queued = await _queued(pool, queue, owner, make_asset, clip, 8)

    async def claim(job_id: str) -> bool:
        try:
            return (
                await leases.claim_job(pool, job_id, worker="w", lease_s=30, max_running_per_user=2)
                is not None
            )
        except leases.UserAtCapacity:
            return False

    results = await asyncio.gather(*(claim(job_id) for job_id in queued))
    assert sum(results) == 2
    running = await pool.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1::text[]) AND status = 'running'", queued
    )
    assert running == 2
