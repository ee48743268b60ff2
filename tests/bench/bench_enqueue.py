"""Enqueue → ffmpeg started, p50/p95: our worker settings against arq's defaults. Run by hand:

    python -m tests.bench.bench_enqueue [--jobs 30] [--database-url URL] [--redis-url URL]

The clock starts before `jobs.create_job` (row insert + arq enqueue + wake message) and stops when the
worker's ffmpeg process exists (the `on_start` hook of media/process.py). Both workers run in this process
on queues of their own, with the same PostgreSQL, Redis, storage and a 1 s source; jobs alternate between
them, one at a time, so neither measures the other's load, and a random pause before each job keeps the
polling worker's phase random, as a real client's would be. Targets: ours p50 <= 50 ms, p95 <= 150 ms;
arq's default polling (poll_delay 0.5 s) gives about 250/480 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from fluxstudio.config import load_settings
from fluxstudio.db.migrations import upgrade
from fluxstudio.db.pool import create_pool
from fluxstudio.ids import new_id
from fluxstudio.log import configure_logging
from fluxstudio.media import find_tools, probe
from fluxstudio.queue import Queue
from fluxstudio.storage import LocalStorage
from fluxstudio.studio import jobs
from fluxstudio.studio.models import JobOptions
from fluxstudio.studio.users import ensure_user
from tests.fixtures.media import make_clip_in
from workers import WorkerOptions, serve

VARIANTS: dict[str, dict] = {
    # ours: woken by pub/sub, 1 s backstop poll
    "fluxstudio": {"wake_on_publish": True, "poll_delay_s": 1.0},
    # arq as it comes: poll every 0.5 s, read up to 100 ids
    "arq defaults": {"wake_on_publish": False, "poll_delay_s": 0.5, "queue_read_limit": 100},
}


async def main(jobs_per_variant: int, database_admin_url: str, redis_url: str) -> None:
    database = f"fluxstudio_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(database_admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    database_url = database_admin_url.rsplit("/", 1)[0] + "/" + database
    try:
        await asyncio.to_thread(upgrade, database_url)
        with tempfile.TemporaryDirectory(prefix="fluxstudio-bench-") as folder:
            await run(jobs_per_variant, database_url, redis_url, Path(folder))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def run(n: int, database_url: str, redis_url: str, folder: Path) -> None:
    media = folder / "media"
    media.mkdir()
    settings = load_settings(
        "worker",
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "STORAGE_URL": media.as_uri(),
            "FFMPEG_PRESET": "ultrafast",
            "LOG_LEVEL": "warning",
        },
    )
    pool = await create_pool(database_url)
    tools = find_tools()
    clip = make_clip_in(folder, "source", size="320x240", duration=1.0)
    user = await ensure_user(pool, "bench@example.com")
    asset_id = await _asset(pool, LocalStorage(media), tools, user.id, clip)

    started: dict[str, asyncio.Future[float]] = {}

    def on_start(job_id: str, _pid: int) -> None:
        if job_id in started and not started[job_id].done():
            started[job_id].set_result(time.perf_counter())

    queues, workers = {}, []
    for name, tuning in VARIANTS.items():
        queue_name = f"bench:{secrets.token_hex(3)}"
        queues[name] = await Queue.connect(redis_url, queue_name=queue_name)
        options = WorkerOptions(
            queue_name=queue_name, handle_signals=False, on_ffmpeg_start=on_start, **tuning
        )
        workers.append(asyncio.create_task(serve(settings, options)))
    await asyncio.sleep(2.0)  # both workers up and subscribed

    latencies: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for i in range(n):
            for name in VARIANTS if i % 2 == 0 else reversed(VARIANTS):
                await asyncio.sleep(random.uniform(0.0, 0.6))
                latencies[name].append(await _one(pool, queues[name], user, asset_id, started))
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for queue in queues.values():
            await queue.aclose()
        await pool.close()
    print(f"enqueue -> ffmpeg started, {n} jobs per variant (ms)")
    for name, values in latencies.items():
        print(f"  {name:14s} {_figures(values)}")


async def _one(pool: asyncpg.Pool, queue: Queue, user, asset_id: str, started: dict) -> float:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    job = await jobs.create_job(pool, queue, user, asset_id, JobOptions(), max_attempts=1)
    future = started.setdefault(job.id, loop.create_future())
    t1 = await asyncio.wait_for(future, 30)
    await _until(lambda: _finished(pool, job.id), 30)
    return (t1 - t0) * 1000


async def _finished(pool: asyncpg.Pool, job_id: str) -> bool:
    return await pool.fetchval("SELECT status IN ('succeeded', 'failed') FROM jobs WHERE id = $1", job_id)


async def _until(check: Callable, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("job did not finish")
        await asyncio.sleep(0.02)


async def _asset(pool: asyncpg.Pool, storage: LocalStorage, tools, user_id: str, clip: Path) -> str:
    info = await probe(clip, tools)
    project_id, asset_id = new_id("prj"), new_id("ast")
    key = f"sources/{asset_id}/source.mp4"
    await storage.put_file(key, clip)
    await pool.execute(
        "INSERT INTO projects (id, user_id, name) VALUES ($1, $2, 'bench')", project_id, user_id
    )
    await pool.execute(
        "INSERT INTO assets (id, project_id, filename, source_key, media)"
        " VALUES ($1, $2, 'source.mp4', $3, $4)",
        asset_id,
        project_id,
        key,
        info.as_dict(),
    )
    return asset_id


def _figures(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered):6.1f}  p95 {p95:6.1f}  min {ordered[0]:6.1f}"
        f"  max {ordered[-1]:6.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "FLUXSTUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("FLUXSTUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    configure_logging("worker", level="warning")
    asyncio.run(main(args.jobs, args.database_url, args.redis_url))
