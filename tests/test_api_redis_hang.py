"""A Redis that hangs is an outage too: with a private redis-server paused by SIGSTOP, job creation
(`POST /assets/{id}/jobs` and an upload with `transcode=true`) still answers within a second or two,
makes exactly one row per request, and the jobs run once Redis resumes (SIGCONT, always, in `finally`).
A real API server (uvicorn in a subprocess) and a real worker process share the paused Redis."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from tests.fixtures.jobs import PrivateRedis
from tests.fixtures.platform import wait_for

pytestmark = pytest.mark.slow

ANSWER_WITHIN_S = 2.5


async def _statuses(pool: asyncpg.Pool, asset_id: str) -> list[str]:
    return [r["status"] for r in await pool.fetch("SELECT status FROM jobs WHERE asset_id = $1", asset_id)]


async def test_job_creation_answers_in_time_while_redis_hangs_and_the_jobs_run_after(
    private_redis: PrivateRedis,
    start_api,
    api_env: dict[str, str],
    make_user,
    start_worker,
    pool: asyncpg.Pool,
    api_clip: Path,
) -> None:
    env = {**api_env, "REDIS_URL": private_redis.url}
    server = start_api(env)
    worker_env = {**env, "FFMPEG_PRESET": "ultrafast", "FFMPEG_THREADS": "1", "LOG_FORMAT": "console"}
    worker = start_worker(worker_env, "--lease", "3", "--reconcile-every", "1")
    await wait_for(lambda: "worker_started" in worker.log(), 60, "the worker to start")
    user = await make_user("hang", server=server)
    body = api_clip.read_bytes()
    async with user.client() as client:
        project = (await client.post("/api/v1/projects", json={"name": "hang"})).json()["id"]
        started = time.monotonic()
        first = await client.post(f"/api/v1/projects/{project}/assets?filename=a.mp4", content=body)
        upload_s = time.monotonic() - started  # the same upload with Redis answering, for comparison
        assert first.status_code == 201, first.text
        asset_id = first.json()["asset"]["id"]

        assert private_redis.proc is not None
        os.kill(private_redis.proc.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            created = await client.post(f"/api/v1/assets/{asset_id}/jobs", json={})
            create_s = time.monotonic() - started
            started = time.monotonic()
            uploaded = await client.post(
                f"/api/v1/projects/{project}/assets?filename=b.mp4&transcode=true", content=body
            )
            upload_paused_s = time.monotonic() - started
        finally:
            os.kill(private_redis.proc.pid, signal.SIGCONT)
    assert created.status_code == 202, created.text
    assert uploaded.status_code == 201, uploaded.text
    assert create_s < ANSWER_WITHIN_S, f"POST /jobs took {create_s:.1f} s with Redis paused"
    assert upload_paused_s < upload_s + ANSWER_WITHIN_S, f"{upload_paused_s:.1f} s vs {upload_s:.1f} s"
    second_asset = uploaded.json()["asset"]["id"]
    assert await _statuses(pool, asset_id) == ["queued"]  # one row per request: nothing to retry
    assert len(await _statuses(pool, second_asset)) == 1

    for asset in (asset_id, second_asset):
        await wait_for(lambda a=asset: _succeeded(pool, a), 90, "the jobs to run once Redis resumed")
    assert worker.process.poll() is None, worker.log()[-3000:]
    assert "redis_slow" in server.log_text()  # the request did not wait for Redis: it said so, once each


async def _succeeded(pool: asyncpg.Pool, asset_id: str) -> bool:
    return await _statuses(pool, asset_id) == ["succeeded"]
