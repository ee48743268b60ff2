"""The HLS job, as a recipe: claim → fetch the source → plan the ladder → transcode with progress →
upload under the job's own prefix, master playlist last → publish (fenced) → clean up in `finally`.

While it works a guard renews the lease every lease/3 and listens for a cancel request; if the job is
cancelled or the lease is lost the work is cancelled, which kills ffmpeg's process group
(media/process.py), and the job's storage prefix is deleted. Whether a failure retries or fails is
decided in one place, `_settle`: bad media fails at once, anything that may pass next time retries with
back-off until the job is out of attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from pathlib import Path, PurePosixPath
from typing import Any

import asyncpg
import structlog
from arq.worker import Retry

from fluxstudio.errors import FluxError, Invalid, MediaError, NotFound, Unavailable, UnreadableMedia
from fluxstudio.log import get_logger
from fluxstudio.media import MediaInfo, Variant, plan_ladder, transcode_hls
from fluxstudio.studio import leases
from fluxstudio.studio.jobs import announce, ladder_options, output_prefix, wake
from fluxstudio.studio.models import JobError
from workers.context import WorkerContext
from workers.live import LiveUpload
from workers.live import stop as stop_live
from workers.progress import ProgressRelay
from workers.workdirs import WorkDir

log = get_logger()
#: How long the wake-up of a job whose user is at MAX_RUNNING_JOBS_PER_USER waits before it asks again.
CAPPED_RETRY_S = 2.0
#: What a database that went away raises through asyncpg.
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
#: The subset that means "PostgreSQL is away" rather than "this query is wrong".
DB_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    ConnectionError,
)


class Stop(Exception):
    """The job must stop without a result of ours: it was cancelled or is no longer ours to run."""


#: How long taking a wake-up may last (claim the row, start the task). It is also the arq job's
#: timeout, so a worker that dies holding a wake-up releases it within this + 10 s (arq's in-progress
#: key), whatever JOB_TIMEOUT_SECONDS is: the transcode itself runs outside the arq job.
WAKE_TIMEOUT_S = 20
#: A wake-up taken while PostgreSQL is away goes back to the queue for this long.
CLAIM_RETRY_S = 5


async def run_job(ctx: dict[str, Any], job_id: str) -> str:
    """arq's entry point: one wake-up. The arq job only says "look at row `job_id`": the row decides.

    It claims the row and hands the claim to a task of the worker's own, then ends, so the wake-up
    leaves Redis as soon as the row is ours. A duplicate wake-up (API retry, reconciler) is harmless:
    the claim is `WHERE status = 'queued'`, one claimer wins, and every later write is fenced by the
    attempt number it got.
    """
    w: WorkerContext = ctx["flux"]
    if w.options.on_wake_up is not None:
        w.options.on_wake_up(job_id)
    started = time.perf_counter()
    try:
        claim = await leases.claim_job(
            w.pool,
            job_id,
            worker=w.name,
            lease_s=w.options.lease_s,
            max_running_per_user=w.settings.max_running_jobs_per_user,
        )
    except leases.UserAtCapacity:
        # Its user runs enough already: this wake-up waits, and the next one (maybe another user's) runs.
        raise Retry(defer=CAPPED_RETRY_S) from None
    except DB_ERRORS as exc:
        w.availability.lost("postgres", exc)
        raise Retry(defer=CLAIM_RETRY_S) from None  # the wake-up stays queued; nothing is lost
    w.availability.back("postgres")
    if claim is None:
        return "not queued"
    with structlog.contextvars.bound_contextvars(job_id=job_id, attempt=claim.attempt):
        claim_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info("job_claimed", asset_id=claim.asset_id, worker=w.name, claim_ms=claim_ms)
        w.launch(claim)  # the task inherits the bound job id and attempt for its log lines
    return "claimed"


class Transcode:
    def __init__(self, w: WorkerContext, claim: leases.Claim) -> None:
        self.w = w
        self.claim = claim
        self.prefix = output_prefix(claim.asset_id, claim.job_id)
        self.cancelled = w.cancels.setdefault(claim.job_id, asyncio.Event())
        self.relay = ProgressRelay(w.pool, w.queue, claim.job_id, claim.attempt)
        self._ffmpeg_at: float | None = None

    async def run(self) -> str:
        work = WorkDir(self.w.options.work_dir)  # locked while it exists; see workers/workdirs.py
        work_dir = work.path
        self.relay.start()
        try:
            await self._announce_running()
            return await self._guarded(self._work(work_dir))
        except asyncio.CancelledError:  # the worker is shutting down and the grace period is over
            await asyncio.shield(self._hand_back())
            raise
        except Stop as stop:
            await self._discard_output()
            log.info("job_stopped", reason=str(stop))
            return str(stop)
        except Exception as exc:
            await self._discard_output()
            return await self._settle(exc)
        finally:
            await self.relay.aclose()
            self.w.cancels.pop(self.claim.job_id, None)
            work.close()

    async def _work(self, work_dir: Path) -> str:
        settings = self.w.settings
        async with asyncio.timeout(settings.job_timeout_seconds):
            source = await self._fetch_source(work_dir)
            ladder = plan_ladder(MediaInfo.from_stored(self.claim.media), ladder_options(self.claim.options))
            out_dir = work_dir / "hls"
            live = LiveUpload(self.w.storage, out_dir, self.prefix, ladder, self._became_playable)
            follower = asyncio.create_task(live.follow(), name=f"live-{self.claim.job_id}")
            try:
                result = await transcode_hls(
                    source,
                    out_dir,
                    ladder,
                    self.w.tools,
                    on_progress=self.relay.on_progress,
                    preset=settings.ffmpeg_preset,
                    threads=settings.ffmpeg_threads,
                    timeout_s=settings.job_timeout_seconds,
                    work_dir=work_dir,
                    on_start=self._ffmpeg_started,
                )
            finally:
                await stop_live(follower, live)
            # The rest, master last, so its URL never points at a half-uploaded stream.
            await live.finish(result.files)
        await self.relay.flush()

        def key(name: str | None) -> str | None:
            return None if name is None else self.prefix + name

        job = await leases.succeed(
            self.w.pool,
            self.claim.job_id,
            self.claim.attempt,
            renditions=[self._rendition(v) for v in result.variants],
            playback_key=self.prefix + "master.m3u8",
            poster_key=key(result.poster),
            storyboard_key=key(result.storyboard),
            mp4_key=key(result.mp4),
        )
        if job is None:
            raise Stop("lease_lost")
        await announce(self.w.queue, job)
        log.info("job_succeeded", renditions=[v.name for v in result.variants])
        return "succeeded"

    async def _guarded(self, work: Coroutine[Any, Any, str]) -> str:
        """Run `work` until it ends or the guard says stop; then cancel it, which kills ffmpeg."""
        task = asyncio.create_task(work)
        guard = asyncio.create_task(self._guard())
        try:
            await asyncio.wait({task, guard}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            raise Stop(guard.result())
        finally:
            for t in (guard, task):
                t.cancel()
            # Waiting for the task is what guarantees ffmpeg's group is dead before we go on.
            await asyncio.gather(guard, task, return_exceptions=True)

    async def _guard(self) -> str:
        """Returns why the job must stop: a cancel request, or a lease that is no longer ours."""
        lease_s = self.w.options.lease_s
        unrenewed_since = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lease_s / 3):
                    await self.cancelled.wait()
                    return "cancelled"
            try:
                ours = await leases.renew_lease(self.w.pool, self.claim.job_id, self.claim.attempt, lease_s)
            except DB_ERRORS as exc:
                # PostgreSQL is away: keep working while the lease may still be ours, then give up.
                self.w.availability.lost("postgres", exc)  # logged once for the process, not per renewal
                if time.monotonic() - unrenewed_since > lease_s:
                    return "lease_lost"
                continue
            self.w.availability.back("postgres")
            if not ours:
                return "lease_lost"
            unrenewed_since = time.monotonic()

    async def _fetch_source(self, work_dir: Path) -> Path:
        key = self.claim.source_key
        if key is None:
            raise NotFound("the asset has no stored source")
        suffix = PurePosixPath(key).suffix[:8]
        path = work_dir / f"source{suffix}"
        with path.open("wb") as out:
            async for chunk in self.w.storage.open(key):
                await asyncio.to_thread(out.write, chunk)
        return path

    def _rendition(self, v: Variant) -> leases.RenditionRecord:
        return leases.RenditionRecord(
            name=v.name,
            width=v.width,
            height=v.height,
            bandwidth=v.bandwidth,
            average_bandwidth=v.average_bandwidth,
            codecs=v.codecs,
            frame_rate=v.fps,
            playlist_key=self.prefix + v.playlist,
        )

    async def _became_playable(self) -> None:
        """Every rendition has a segment and the master is up: the asset plays while the job runs."""
        key = self.prefix + "master.m3u8"
        if not await leases.mark_playable(self.w.pool, self.claim.job_id, self.claim.attempt, key):
            return  # an earlier stream plays until this job succeeds, or the job is no longer ours
        after = None if self._ffmpeg_at is None else round(time.monotonic() - self._ffmpeg_at, 3)
        log.info("job_playable", after_s=after)
        with contextlib.suppress(Unavailable):
            event = {"job_id": self.claim.job_id, "playback_key": key}
            await self.w.queue.publish(self.claim.job_id, {"event": "playable", "data": event})

    def _ffmpeg_started(self, pid: int) -> None:
        self._ffmpeg_at = time.monotonic()
        log.info("ffmpeg_started", pid=pid)
        hook = self.w.options.on_ffmpeg_start
        if hook is not None:
            hook(self.claim.job_id, pid)

    async def _announce_running(self) -> None:
        job = await leases.load_job(self.w.pool, self.claim.job_id)
        if job is not None:
            await announce(self.w.queue, job)

    async def _discard_output(self) -> None:
        """A failed, cancelled or superseded attempt takes its partial stream down, row first; not when a
        later attempt of the job now writes (or has published) under the same prefix."""
        owned = True
        with contextlib.suppress(*DB_ERRORS):
            owned = await leases.take_down(self.w.pool, self.claim.job_id, self.claim.attempt, self.prefix)
        if owned:
            with contextlib.suppress(FluxError):
                await self.w.storage.delete_prefix(self.prefix)

    async def _hand_back(self) -> None:
        """Shutdown: the job goes back to the queue and the attempt does not count against it."""
        await self._discard_output()
        job = await leases.release(self.w.pool, self.claim.job_id, self.claim.attempt)
        if job is not None:
            log.info("job_released")
            await wake(self.w.queue, job.id, self.claim.attempt)
            await announce(self.w.queue, job)

    async def _settle(self, exc: BaseException) -> str:
        """The one place that decides: fail now, or retry later."""
        if isinstance(exc, UnreadableMedia):
            error, retry = JobError(code=exc.code, message=exc.message), False
        elif isinstance(exc, NotFound):
            error, retry = JobError(code="source_missing", message=exc.message), False
        elif isinstance(exc, Invalid):
            error, retry = JobError(code=exc.code, message=exc.message), False
        elif isinstance(exc, TimeoutError):
            limit = self.w.settings.job_timeout_seconds
            error, retry = JobError(code="timeout", message=f"the job ran longer than {limit} s"), False
        elif isinstance(exc, DB_DOWN):
            self.w.availability.lost("postgres", exc)
            error, retry = JobError(code="database_unavailable", message="PostgreSQL went away"), True
        elif isinstance(exc, MediaError | Unavailable):
            error, retry = JobError(code=exc.code, message=str(exc)), getattr(exc, "retryable", True)
        else:
            log.exception("job_crashed")  # a bug or a dependency we do not translate: retry, bounded
            error, retry = JobError(code="internal", message="the worker failed unexpectedly"), True
        options = self.w.options
        delay = min(options.retry_base_s * 2 ** (self.claim.attempts_used - 1), options.retry_max_s)
        try:
            job = await leases.fail(
                self.w.pool, self.claim.job_id, self.claim.attempt, error, retry_in_s=delay if retry else None
            )
        except DB_ERRORS:
            log.warning("job_failure_unrecorded", code=error.code)  # the lease expires; the reconciler acts
            return "unrecorded"
        if job is None:
            return "lease_lost"
        if job.status == "queued":
            log.warning("job_retrying", code=error.code, error=error.message, retry_in_s=delay)
            await wake(self.w.queue, job.id, self.claim.attempt, defer_s=delay)
        else:
            log.warning("job_failed", code=error.code, error=error.message)
        await announce(self.w.queue, job)
        return job.status
