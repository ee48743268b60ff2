"""One worker process: arq's Worker, tuned for transcodes, with what arq lacks for them.

arq gives at-least-once delivery and polling; this module adds what ARCHITECTURE rule 1 needs around it:
resources opened in on_startup and closed in on_shutdown, a wake-up on a pub/sub message (so a job
starts in milliseconds instead of after the next poll), cancel requests delivered to the running job,
a reconciler deduplicated across the fleet, a graceful SIGTERM, and a process that never dies of a
dependency that is down or not there yet (Redis or PostgreSQL, at start or later): it waits, says so in
its heartbeat, logs the outage once, and resumes the moment the dependency answers.

An arq job here is only a wake-up: it claims the row and ends (workers/transcode.py `run_job`); the
transcode runs in a task of this process, counted against `concurrency`. So arq's queue holds waiting
wake-ups only, never running jobs: an idle worker's poll costs one command however many jobs the fleet
runs, and a worker that dies holding a wake-up releases it within seconds (arq's in-progress key lives
WAKE_TIMEOUT_S + 10 s), not after the longest transcode.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from typing import Any

from arq.worker import Worker, func

from fluxstudio.availability import RETRY_FIRST_S, RETRY_MAX_S, Availability
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
from fluxstudio.studio.leases import Claim
from workers import ingest
from workers.context import WorkerContext, WorkerOptions
from workers.health import HealthServer
from workers.transcode import DB_ERRORS, WAKE_TIMEOUT_S, Transcode, run_job
from workers.workdirs import sweep_orphans

log = get_logger()
POSTGRES_PROBE_TIMEOUT_S = 5.0
POOL_CLOSE_TIMEOUT_S = 5.0


class FluxWorker(Worker):
    """arq's Worker that polls when told to, takes only as many wake-ups as it has free slots, runs
    transcodes outside arq's jobs, and rides out outages instead of crashing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.availability = Availability()
        self.flux: WorkerContext | None = None
        self.transcodes_done = 0
        self._pending = asyncio.Event()  # poll now: a wake message, a free slot, a dependency back
        self._redis_retry_s = RETRY_FIRST_S

    def free_slots(self) -> int:
        """Jobs this process may claim now: none until started, or while PostgreSQL is away."""
        if self.flux is None or not self.allow_pick_jobs or self.availability.is_down("postgres"):
            return 0
        return self.max_jobs - self.job_counter - len(self.flux.running)

    def wake_up(self) -> None:
        self._pending.set()

    async def main(self) -> None:
        # arq's own main() starts with `log_redis_info`, which raises while Redis is down: the crash
        # loop of the old deploys. Ours starts whatever the state of Redis and PostgreSQL.
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        while True:
            await self._poll_iteration()
            if self.burst and await self._burst_done():
                return
            await self._idle()

    async def _idle(self) -> None:
        """Wait for the next poll: a wake-up, or the backstop period (a bounded back-off while Redis is
        away, so a waiting worker neither spins nor takes long to notice Redis is back)."""
        period = self.poll_delay_s
        if self.availability.is_down("redis"):
            period, self._redis_retry_s = self._redis_retry_s, min(self._redis_retry_s * 2, RETRY_MAX_S)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(period):
                await self._pending.wait()
        self._pending.clear()

    async def _burst_done(self) -> bool:
        if self.tasks:  # wake-ups being taken or transcodes running (both are in arq's task table)
            return False
        try:
            return await self.pool.zcard(self.queue_name) == 0  # deferred retries count: wait for them
        except REDIS_ERRORS:
            return False

    async def _poll_iteration(self) -> None:
        try:
            if self.free_slots() > 0:
                await super()._poll_iteration()
            else:
                self._reap()  # a busy worker costs Redis nothing
        except REDIS_ERRORS as exc:
            self.availability.lost("redis", exc)
            return
        if self.availability.is_down("redis") and self.free_slots() > 0:
            self.availability.back("redis")
        self._redis_retry_s = RETRY_FIRST_S

    def _reap(self) -> None:
        for key, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[key]
                task.result()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        # Oldest first, as arq reads them, one at a time so that we stop as soon as the slots are full
        # (a wake-up another worker took meanwhile is skipped by arq in three commands).
        for job_id in job_ids:
            if self.free_slots() <= 0:
                return
            await super().start_jobs([job_id])

    def launch(self, claim: Claim) -> None:
        """Run a claimed job's transcode in this process; it counts against the slots until it ends."""
        assert self.flux is not None
        w = self.flux
        task = asyncio.create_task(self._transcode(w, claim), name=f"transcode-{claim.job_id}")
        w.running[claim.job_id] = task
        # In arq's task table too: SIGTERM's grace period, burst mode and close() wait for it.
        self.tasks[f"transcode:{claim.job_id}:{claim.attempt}"] = task

        def ended(_: asyncio.Task[str]) -> None:
            if w.running.get(claim.job_id) is task:
                del w.running[claim.job_id]
            self.wake_up()  # a free slot: take the next waiting job now, not at the next poll

        task.add_done_callback(ended)

    async def _transcode(self, w: WorkerContext, claim: Claim) -> str:
        try:
            outcome = await Transcode(w, claim).run()
        except asyncio.CancelledError:  # shutdown: the job handed itself back
            return "released"
        self.transcodes_done += 1
        return outcome

    async def close(self) -> None:
        # arq's close(), minus its failure modes: a Redis that is down must not skip on_shutdown (which
        # closes the pool and removes the heartbeat).
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        with contextlib.suppress(*REDIS_ERRORS):
            await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        with contextlib.suppress(*REDIS_ERRORS):
            await self.pool.aclose(close_connection_pool=True)
        self._pool = None


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
        # Wake-ups being taken at once; the transcodes they start are counted with them (free_slots).
        # One ffmpeg already uses every core; more at once only slows each and multiplies memory.
        "max_jobs": options.concurrency,
        # Only waiting wake-ups are in the queue (a claimed job's is gone), so this bounds one poll's
        # reply, and does not cap how many jobs the fleet runs.
        "queue_read_limit": options.queue_read_limit,
        # Idle polling costs one Redis command per worker per period. With the pub/sub wake-up the poll
        # is only the backstop for deferred retries and lost messages, so it can be slow; without it
        # (plain arq, the benchmark's baseline) latency is about half the period on average.
        "poll_delay": options.poll_delay_s or settings.worker_poll_delay_seconds,
        # The arq job is the wake-up alone (claim, start a task), never the transcode: its own short
        # deadline bounds how long a dead worker's wake-up stays taken (in-progress key: this + 10 s).
        "job_timeout": WAKE_TIMEOUT_S,
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
        worker: FluxWorker = ctx["worker"]
        availability = worker.availability
        # min_size=0: nothing connects here, so a PostgreSQL that is down or not there yet cannot stop
        # the start (and asyncpg does not reconnect in the background, logging each failure).
        pool = await create_pool(
            settings.database_url.get(), min_size=0, max_size=settings.db_pool_size,
            application_name="fluxstudio-worker",
        )
        queue = Queue(redis_client(settings.redis_url.get(), options.queue_name), options.queue_name)
        hub = ProgressHub(settings.redis_url.get(), availability=availability)
        await hub.start()
        storage = open_storage(settings)
        tools = find_tools(settings.ffmpeg_path, settings.ffprobe_path)
        w = WorkerContext(settings, options, pool, queue, hub, storage, tools, availability=availability)
        w.launch = worker.launch
        ctx["flux"] = w
        # Beat before anything slow (the first reconcile), so a probe sees a starting worker as alive.
        heartbeat = ctx["heartbeat"] = Heartbeat(
            settings.home, queue.redis, queue_name=options.queue_name, concurrency=options.concurrency,
            jobs_running=lambda: len(w.running), availability=availability,
        )
        await heartbeat.beat()
        w.background.append(asyncio.create_task(heartbeat.run()))
        await _probe_postgres(w)
        reconcile_now = asyncio.Event()
        w.background += [
            asyncio.create_task(_watch_postgres(w)),
            asyncio.create_task(_listen_for_cancels(w)),
            asyncio.create_task(_reconcile_forever(w, reconcile_now)),
        ]
        if options.wake_on_publish:
            w.background.append(asyncio.create_task(_listen_for_wakes(w, worker)))

        def resume(dependency: str) -> None:
            # Back from an outage: rows may have been left queued without a wake-up; repair, then poll.
            reconcile_now.set()
            worker.wake_up()

        availability.on_back(resume)
        await hub.wait_connected(2.0)
        await _reconcile_once(w)  # a worker that starts repairs first: it may be replacing a dead one
        await asyncio.to_thread(sweep_orphans, options.work_dir)  # and removes what dead ones left
        w.background += ingest.background(w)  # tus expiry, import repair, webhook delivery
        worker.flux = w  # from here on it takes jobs
        log.info("worker_started", worker=w.name, concurrency=options.concurrency, queue=options.queue_name)

    return startup


async def _probe_postgres(w: WorkerContext) -> bool:
    try:
        async with asyncio.timeout(POSTGRES_PROBE_TIMEOUT_S):
            await w.pool.fetchval("SELECT 1")
    except (*DB_ERRORS, TimeoutError) as exc:
        w.availability.lost("postgres", exc)
        return False
    w.availability.back("postgres")
    return True


async def _watch_postgres(w: WorkerContext) -> None:
    """Whoever noticed PostgreSQL is away reported it; this task probes it back with a bounded back-off."""

    async def probe() -> None:
        async with asyncio.timeout(POSTGRES_PROBE_TIMEOUT_S):
            await w.pool.fetchval("SELECT 1")

    while True:
        await asyncio.sleep(RETRY_FIRST_S)
        if w.availability.is_down("postgres"):
            await w.availability.retry_until_up("postgres", probe)


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
    try:
        async with asyncio.timeout(POOL_CLOSE_TIMEOUT_S):
            await w.pool.close()
    except TimeoutError:  # a query stuck on a PostgreSQL that hangs must not hold up the exit
        w.pool.terminate()
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
    async with w.hub.listen(wake_channel(w.options.queue_name)) as messages:
        async for _ in messages:
            worker.wake_up()


async def _reconcile_forever(w: WorkerContext, now: asyncio.Event) -> None:
    every = w.options.reconcile_every_s
    while True:
        with contextlib.suppress(TimeoutError):  # jitter: workers do not fire together
            async with asyncio.timeout(every * random.uniform(0.8, 1.0)):
                await now.wait()
        now.clear()
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
    except (*DB_ERRORS, TimeoutError) as exc:
        w.availability.lost("postgres", exc)  # logged once per outage; the next period tries again
        return
    if done.requeued or done.failed or done.rewoken:
        log.info("reconciled", requeued=done.requeued, failed=done.failed, rewoken=done.rewoken)


async def serve(settings: Settings, options: WorkerOptions) -> int:
    """Run one worker until it is stopped (SIGTERM/SIGINT, or its burst is done); returns the number of
    transcodes it ran to an outcome (succeeded, failed, retrying, cancelled)."""
    worker = FluxWorker(**worker_settings(settings, options))
    worker.ctx["worker"] = worker
    health: HealthServer | None = None
    original_startup = worker.on_startup

    async def startup(ctx: dict[str, Any]) -> None:
        nonlocal health
        await original_startup(ctx)
        if options.health_port is not None:
            health = HealthServer(settings.home, worker, lambda: len(ctx["flux"].running))
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
        if health is not None:
            await health.aclose()
        await worker.close()
    return worker.transcodes_done


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
    Returns the number of transcodes run to an outcome.
    """
    options = WorkerOptions(
        concurrency=concurrency or settings.worker_concurrency, burst=burst, grace_s=grace_s, **tuning
    )
    return asyncio.run(serve(settings, options))
