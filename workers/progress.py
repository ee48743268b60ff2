"""Progress of a running job, relayed the way ARCHITECTURE rule 3 says: every ffmpeg event to Redis
pub/sub, the job row at most about once a second.

ffmpeg's progress is read from its stdout pipe; if relaying blocked that reader (Redis timing out,
PostgreSQL slow), ffmpeg would block on a full pipe. So `on_progress` only puts the event in a small
buffer, and one task sends them, in order; when the buffer is full the oldest event is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg

from fluxstudio.errors import Unavailable
from fluxstudio.log import get_logger
from fluxstudio.media import Progress
from fluxstudio.queue import Queue
from fluxstudio.studio import leases
from fluxstudio.studio.models import ProgressEvent

ROW_EVERY_S = 1.0
_BUFFER = 64
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

log = get_logger()


class ProgressRelay:
    def __init__(self, pool: asyncpg.Pool, queue: Queue, job_id: str, attempt: int) -> None:
        self.pool, self.queue, self.job_id, self.attempt = pool, queue, job_id, attempt
        self._events: asyncio.Queue[ProgressEvent] = asyncio.Queue(_BUFFER)
        self._task: asyncio.Task[None] | None = None
        self._row_at = 0.0
        self._redis_down = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._send_all(), name=f"progress-{self.job_id}")

    def on_progress(self, progress: Progress) -> None:
        event = ProgressEvent(
            job_id=self.job_id,
            progress=progress.progress,
            fps=progress.fps,
            speed=progress.speed,
            out_time_s=progress.out_time_s,
            eta_s=progress.eta_s,
        )
        if self._events.full():
            self._events.get_nowait()
        self._events.put_nowait(event)

    async def flush(self, within_s: float = 5.0) -> None:
        """Wait until every event so far is sent (before the job's final status goes out)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._events.join()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _send_all(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._publish(event)
                if time.monotonic() - self._row_at >= ROW_EVERY_S:
                    await self._store(event.progress)
            except Exception:  # progress is best effort: never let it end the relay or the job
                log.exception("progress_relay_failed")
            finally:
                self._events.task_done()

    async def _publish(self, event: ProgressEvent) -> None:
        try:
            await self.queue.publish(self.job_id, {"event": "progress", "data": event.model_dump()})
        except Unavailable as exc:
            if not self._redis_down:  # once per state change, not per event
                log.warning("progress_unpublished", error=exc.message)
            self._redis_down = True
        else:
            self._redis_down = False

    async def _store(self, progress: float) -> None:
        self._row_at = time.monotonic()
        with contextlib.suppress(*_DB_ERRORS):
            await leases.record_progress(self.pool, self.job_id, self.attempt, progress)
