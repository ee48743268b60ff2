"""One worker process: arq's Worker, tuned for transcodes, with what arq lacks for them.

arq gives at-least-once delivery and polling; this module adds what ARCHITECTURE rule 1 needs around it:
resources opened in on_startup and closed in on_shutdown, a wake-up on a pub/sub message (so a job
starts in milliseconds instead of after the next poll), cancel requests delivered to the running job,
a reconciler deduplicated across the fleet, survival of Redis outages, and a graceful SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from arq.worker import Worker, func

from fluxstudio.config import Settings
from fluxstudio.db.pool import create_pool
from fluxstudio.heartbeat import Heartbeat
from fluxstudio.log import get_logger
from fluxstudio.media import find_tools
from fluxstudio.queue import (
    REDIS_ERRORS,
    RUN_JOB,
    ProgressHub,
    Queue,
    cancel_channel,
    dumps,
    loads,
    redis_client,
    wake_channel,
)
from fluxstudio.storage import open_storage
from fluxstudio.studio import leases
from workers import ingest
from workers.context import WorkerContext, WorkerOptions
from workers.health import HealthServer
from workers.transcode import DB_ERRORS, run_job

log = get_logger()


class FluxWorker(Worker):
    """arq's Worker that polls when told to, and rides out a Redis outage instead of crashing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._poll_lock = asyncio.Lock()
        self._redis_down = False

    async def _poll_iteration(self) -> None:
        # The wake listener and arq's loop both poll; one at a time, as arq's code assumes.
        async with self._poll_lock:
            try:
                await super()._poll_iteration()
            except REDIS_ERRORS as exc:
                if not self._redis_down:  # once per state change
                    log.warning("redis_unavailable", error=str(exc) or type(exc).__name__)
                self._redis_down = True
                await asyncio.sleep(1.0)
                return
        if self._redis_down:
            self._redis_down = False
            log.info("redis_restored")

    async def wake_up(self) -> None:
        if self.allow_pick_jobs and self.job_counter < self.max_jobs:
            await self._poll_iteration()

    async def close(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await super().close()


def worker_settings(settings: Settings, options: WorkerOptions) -> dict[str, Any]:
    """The keyword arguments of arq's Worker (what an arq WorkerSettings class holds), from Settings."""
    assert settings.redis_url is not None
    return {
        "functions": [func(run_job, name=RUN_JOB), *ingest.FUNCTIONS],
        "queue_name": options.queue_name,
        "redis_pool": redis_client(settings.redis_url.get(), options.queue_name),
        "on_startup": _startup(settings, options),
        "on_shutdown": _shutdown,
        "burst": options.burst,
        # One ffmpeg already uses every core; more at once only slows each and multiplies memory.
        "max_jobs": options.concurrency,
        # A running job stays in arq's queue until it finishes (so do the wake-ups of workers that died
        # mid-job, until arq's in-progress key expires), and every poll reads from the head: the limit
        # must exceed what the whole fleet runs at once, or a worker sees only busy jobs and idles while
        # work waits. It is also the cost: one Redis round trip per busy job ahead of a free one, per
        # poll. Hence the wake-up below and a slow backstop poll.
        "queue_read_limit": options.queue_read_limit,
        # Idle polling costs one Redis command per worker per period. With the pub/sub wake-up the poll
        # is only the backstop for deferred retries and lost messages, so it can be slow; without it
        # (plain arq, the benchmark's baseline) latency is about half the period on average.
        "poll_delay": options.poll_delay_s,
        # arq's own deadline must never fire before ours (JOB_TIMEOUT_SECONDS inside the job), whose
        # error is clearer and whose cleanup is ours.
        "job_timeout": settings.job_timeout_seconds + 300,
        "keep_result": 0,  # results live in PostgreSQL; arq's would only pile up in Redis
        "max_tries": 1000,  # attempts are counted in the row; arq's count must never drop a wake-up
        "job_serializer": dumps,
        "job_deserializer": loads,
        "handle_signals": options.handle_signals,
        # SIGTERM: stop taking jobs, wait this long, then cancel them (they hand themselves back).
        "job_completion_wait": options.grace_s,
        "health_check_interval": 60,
    }


def _startup(settings: Settings, options: WorkerOptions) -> Any:
    async def startup(ctx: dict[str, Any]) -> None:
        assert settings.database_url is not None and settings.redis_url is not None
        pool = await create_pool(
            settings.database_url.get(), min_size=1, max_size=options.concurrency + 4,
            application_name="fluxstudio-worker",
        )
        queue = Queue(redis_client(settings.redis_url.get(), options.queue_name), options.queue_name)
        hub = ProgressHub(settings.redis_url.get())
        await hub.start()
        storage = open_storage(settings)
        tools = find_tools(settings.ffmpeg_path, settings.ffprobe_path)
        w = WorkerContext(settings, options, pool, queue, hub, storage, tools)
        ctx["flux"] = w
        # Beat before anything slow (the first reconcile), so a probe sees a starting worker as alive.
        heartbeat = ctx["heartbeat"] = Heartbeat(
            settings.home, queue.redis, queue_name=options.queue_name, concurrency=options.concurrency,
            jobs_running=lambda: len(w.cancels),
        )
        await heartbeat.beat()
        w.background.append(asyncio.create_task(heartbeat.run()))
        await hub.wait_connected(2.0)
        await _reconcile_once(w)  # a worker that starts repairs first: it may be replacing a dead one
        w.background += [
            asyncio.create_task(_listen_for_cancels(w)),
            asyncio.create_task(_reconcile_forever(w)),
            *ingest.background(w),  # tus expiry, import repair, webhook delivery
        ]
        log.info("worker_started", worker=w.name, concurrency=options.concurrency, queue=options.queue_name)

    return startup


async def _shutdown(ctx: dict[str, Any]) -> None:
    w: WorkerContext | None = ctx.get("flux")
    if w is None:
        return
    for task in w.background:
        task.cancel()
    await asyncio.gather(*w.background, return_exceptions=True)
    if (heartbeat := ctx.get("heartbeat")) is not None:
        await heartbeat.stop()
    await w.hub.aclose()
    await w.queue.aclose()
    await w.storage.aclose()
    await w.pool.close()
    log.info("worker_stopped", worker=w.name)


async def _listen_for_cancels(w: WorkerContext) -> None:
    async with w.hub.listen(cancel_channel(w.options.queue_name)) as requests:
        async for job_id in requests:
            event = w.cancels.get(job_id) if isinstance(job_id, str) else None
            if event is not None:
                log.info("job_cancel_requested", job_id=job_id)
                event.set()


async def _listen_for_wakes(w: WorkerContext, worker: FluxWorker) -> None:
    """Poll as soon as a job is enqueued. Many messages in a burst make one poll, not one each."""
    pending = asyncio.Event()

    async def receive() -> None:
        async with w.hub.listen(wake_channel(w.options.queue_name)) as messages:
            async for _ in messages:
                pending.set()

    receiver = asyncio.create_task(receive())
    try:
        while True:
            await pending.wait()
            pending.clear()
            await worker.wake_up()
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)


async def _reconcile_forever(w: WorkerContext) -> None:
    every = w.options.reconcile_every_s
    while True:
        await asyncio.sleep(every * random.uniform(0.8, 1.0))  # jitter: workers do not fire together
        await _reconcile_once(w)


async def _reconcile_once(w: WorkerContext) -> None:
    """At most one reconciler per period across the fleet: a Redis key with that period's lifetime
    elects it, and an advisory lock in PostgreSQL makes any overlap harmless (and covers Redis down)."""
    gate = f"{w.options.queue_name}:reconciler"
    try:
        period_ms = max(1, int(w.options.reconcile_every_s * 900))
        if not await w.queue.redis.set(gate, w.name, nx=True, px=period_ms):
            return
    except REDIS_ERRORS:
        pass
    try:
        done = await leases.reconcile(w.pool, w.queue)
    except DB_ERRORS as exc:
        log.warning("reconcile_failed", error=str(exc) or type(exc).__name__)
        return
    if done.requeued or done.failed or done.rewoken:
        log.info("reconciled", requeued=done.requeued, failed=done.failed, rewoken=done.rewoken)


async def serve(settings: Settings, options: WorkerOptions) -> int:
    """Run one worker until it is stopped (SIGTERM/SIGINT, or its burst is done); returns jobs completed."""
    worker = FluxWorker(**worker_settings(settings, options))
    waker: asyncio.Task[None] | None = None
    health: HealthServer | None = None
    original_startup = worker.on_startup

    async def startup(ctx: dict[str, Any]) -> None:
        nonlocal waker, health
        await original_startup(ctx)
        if options.wake_on_publish:
            waker = asyncio.create_task(_listen_for_wakes(ctx["flux"], worker))
        if options.health_port is not None:
            health = HealthServer(settings.home, worker, lambda: len(ctx["flux"].cancels))
            await health.start(options.health_port)

    worker.on_startup = startup
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        # arq's signal handlers end its run by cancelling its main task: our normal way out. A
        # cancellation of our own task (someone stopping us) goes on up.
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    finally:
        if waker is not None:
            waker.cancel()
            await asyncio.gather(waker, return_exceptions=True)
        if health is not None:
            await health.aclose()
        await worker.close()
    return worker.jobs_complete


def run_worker(
    settings: Settings,
    *,
    burst: bool = False,
    concurrency: int | None = None,
    grace_s: float = 30.0,
    **tuning: Any,
) -> int:
    """Block running one worker process; the entry point of `fluxstudio worker` and `python -m workers`.

    `tuning` takes any other WorkerOptions field (lease_s, reconcile_every_s, queue_name, ...).
    Returns the number of jobs arq completed.
    """
    options = WorkerOptions(
        concurrency=concurrency or settings.worker_concurrency, burst=burst, grace_s=grace_s, **tuning
    )
    return asyncio.run(serve(settings, options))
