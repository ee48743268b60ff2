"""A worker in this process (arq burst mode, real ffmpeg, PostgreSQL, Redis and storage): a job runs end
to end and plays, progress streams in order, bad media fails at once, cancel kills ffmpeg in time."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from fluxstudio.config import Settings
from fluxstudio.queue import ProgressHub, Queue
from fluxstudio.storage import LocalStorage
from fluxstudio.studio import jobs, progress
from fluxstudio.studio.models import JobOptions
from fluxstudio.studio.users import User
from tests.fixtures.jobs import AssetMaker
from tests.fixtures.media import group_alive, parse_master, play
from tests.fixtures.platform import wait_for
from workers import WorkerOptions, serve


@pytest.fixture
def options(queue_name: str, tmp_path: Path) -> WorkerOptions:
    work = tmp_path / "work"
    work.mkdir()
    return WorkerOptions(
        burst=True, handle_signals=False, queue_name=queue_name, lease_s=6, reconcile_every_s=1, work_dir=work
    )


@pytest.fixture
async def hub(redis_url: str) -> AsyncIterator[ProgressHub]:
    hub = ProgressHub(redis_url)
    await hub.start()
    assert await hub.wait_connected(5)
    yield hub
    await hub.aclose()


@pytest.mark.slow
async def test_a_job_runs_end_to_end_and_its_progress_streams_in_order(
    pool: asyncpg.Pool,
    queue: Queue,
    hub: ProgressHub,
    owner: User,
    make_asset: AssetMaker,
    clips,
    worker_settings: Settings,
    options: WorkerOptions,
    media_root: Path,
) -> None:
    asset_id = await make_asset(clips(duration=2.0))
    job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(segment_seconds=2), max_attempts=3)
    stream = progress.events(pool, hub, owner, job.id)
    first = await anext(stream)  # subscribed and read the row: from here nothing is missed
    assert first[0] == "status" and first[1]["status"] == "queued"

    completed = await serve(worker_settings, options)
    seen = [first] + [event async for event in _until_end(stream)]

    assert completed >= 1  # a stray job of another test may be reconciled too; ours is checked below
    done = await jobs.get_job(pool, owner, job.id)
    assert (done.status, done.attempts, done.progress, done.error) == ("succeeded", 1, 1.0, None)
    kinds = [kind for kind, _ in seen]
    assert kinds[-2:] == ["status", "end"] and seen[-1][1]["status"] == "succeeded"
    statuses = [data["status"] for kind, data in seen if kind == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    fractions = [data["progress"] for kind, data in seen if kind == "progress"]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert kinds.index("progress") > statuses.index("running")

    asset = await pool.fetchrow("SELECT status, playback_key FROM assets WHERE id = $1", asset_id)
    assert asset["status"] == "ready" and asset["playback_key"] == f"hls/{asset_id}/{job.id}/master.m3u8"
    master = media_root / asset["playback_key"]
    names = await pool.fetch("SELECT name, playlist_key FROM renditions WHERE job_id = $1", job.id)
    assert [v["URI"] for v in parse_master(master)] == [
        r["playlist_key"].rsplit("/", 2)[-2] + "/index.m3u8" for r in names
    ]
    view = play(master.parent / parse_master(master)[0]["URI"])
    assert view["duration_s"] == pytest.approx(2.0, abs=0.3) and (view["width"], view["height"]) == (320, 240)
    assert list(options.work_dir.iterdir()) == []  # the private temp folder is gone


async def test_unreadable_media_fails_at_once_and_leaves_nothing(
    pool: asyncpg.Pool,
    queue: Queue,
    owner: User,
    make_asset: AssetMaker,
    clips,
    worker_settings: Settings,
    options: WorkerOptions,
    storage: LocalStorage,
) -> None:
    asset_id = await make_asset(clips(duration=1.0), source_bytes=b"not a video at all " * 500)
    job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)
    await serve(worker_settings, options)
    failed = await jobs.get_job(pool, owner, job.id)
    assert (failed.status, failed.attempts, failed.error.code) == ("failed", 1, "unreadable_media")
    assert await pool.fetchval("SELECT status FROM assets WHERE id = $1", asset_id) == "failed"
    assert await storage.list(f"hls/{asset_id}/") == []
    assert await queue.depth() == 0  # not retried


@pytest.mark.slow
async def test_cancel_kills_ffmpeg_within_two_seconds_and_removes_output(
    pool: asyncpg.Pool,
    queue: Queue,
    owner: User,
    make_asset: AssetMaker,
    clips,
    worker_settings: Settings,
    options: WorkerOptions,
    storage: LocalStorage,
) -> None:
    asset_id = await make_asset(clips(duration=20.0))
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    options = dataclasses.replace(
        options, burst=False, on_ffmpeg_start=lambda job_id, pid: started.done() or started.set_result(pid)
    )
    slow = dataclasses.replace(worker_settings, ffmpeg_preset="slower")  # seconds of work to interrupt
    worker = asyncio.create_task(serve(slow, options))
    try:
        job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)
        pid = await asyncio.wait_for(started, 30)
        await wait_for(lambda: _progress(pool, job.id), 20, "ffmpeg to make progress")
        assert group_alive(pid)

        cancelled_at = time.monotonic()
        cancelled = await jobs.cancel_job(pool, queue, owner, job.id)
        await wait_for(lambda: _true(not group_alive(pid)), 2.0, "ffmpeg's process group to be gone", 0.02)
        assert time.monotonic() - cancelled_at <= 2.0
        assert cancelled.status == "cancelled"
        await wait_for(lambda: _true(not list(options.work_dir.iterdir())), 5, "the work folder to go")
        assert await storage.list(f"hls/{asset_id}/") == []
        row = await pool.fetchrow("SELECT status, progress FROM jobs WHERE id = $1", job.id)
        assert row["status"] == "cancelled"  # the worker changed nothing after the cancel
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)


async def _until_end(stream):
    async for kind, data in stream:
        yield kind, data
        if kind == "end":
            return


async def _progress(pool: asyncpg.Pool, job_id: str) -> bool:
    return bool(await pool.fetchval("SELECT progress > 0 FROM jobs WHERE id = $1", job_id))


async def _true(value: bool) -> bool:
    return value


async def test_a_missing_source_fails_without_retrying(
    pool: asyncpg.Pool,
    queue: Queue,
    owner: User,
    make_asset: AssetMaker,
    clips,
    worker_settings: Settings,
    options: WorkerOptions,
    storage: LocalStorage,
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    await storage.delete_prefix(f"sources/{asset_id}")
    job = await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)
    await serve(worker_settings, options)
    failed = await jobs.get_job(pool, owner, job.id)
    assert (failed.status, failed.attempts, failed.error.code) == ("failed", 1, "source_missing")
