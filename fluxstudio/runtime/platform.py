"""What one API process holds open for its whole life: the pool, Redis (queue + progress hub), storage
and the media tools, opened in `open_platform` and closed in reverse.

Degrade, don't die. PostgreSQL down at start: the pool is made anyway (it connects on demand, and
reconnects on its own once PostgreSQL is back), `/readyz` says 503, requests that need it get 503.
Redis down at start: the API serves without a queue (`/readyz` "degraded", new jobs wait in PostgreSQL
for the reconciler) while `RedisLink` retries in the background with a bounded back-off, logging once
when Redis is lost and once when it is back, not once per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from fluxstudio.config import Settings
from fluxstudio.db.migrations import head_revision
from fluxstudio.db.pool import create_pool, describe
from fluxstudio.log import get_logger
from fluxstudio.media import Tools, find_tools
from fluxstudio.queue import ProgressHub, Queue
from fluxstudio.runtime.metrics import ApiMetrics
from fluxstudio.storage import Storage, open_storage

#: Short: a request waiting on a dead PostgreSQL should fail fast with 503, not hang for the default 10 s.
CONNECT_TIMEOUT_S = 5.0
STARTUP_PROBE_TIMEOUT_S = 5.0
REDIS_CONNECT_TIMEOUT_S = 3.0
REDIS_RETRY_FIRST_S = 0.5
REDIS_RETRY_MAX_S = 30.0
STALE_UPLOAD_S = 24 * 3600
POOL_CLOSE_TIMEOUT_S = 5.0
#: How spooled uploads are named (the API's receiver makes them; the sweep below removes stale ones).
UPLOAD_PREFIX, UPLOAD_SUFFIX = "upload-", ".part"

log = get_logger()


class RedisLink:
    """This process's Queue and ProgressHub, connected now or as soon as Redis answers."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.queue: Queue | None = None
        self.hub: ProgressHub | None = None
        self._retrying: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # The hub keeps its own connection alive (it reconnects and tells readers to resync), so it
        # starts now whatever the state of Redis; only the queue needs connecting here.
        self.hub = ProgressHub(self.redis_url)
        await self.hub.start()
        error = await self._connect()
        if error is not None:
            log.warning("redis_unavailable", error=error, retry="in the background")
            self._retrying = asyncio.create_task(self._retry(), name="redis-reconnect")

    async def _connect(self) -> str | None:
        """None once the queue is connected, else why not."""
        try:
            async with asyncio.timeout(REDIS_CONNECT_TIMEOUT_S):
                self.queue = await Queue.connect(self.redis_url)
        except Exception as exc:  # whatever it was, the retry loop must live on
            return getattr(exc, "message", None) or type(exc).__name__
        return None

    async def _retry(self) -> None:
        delay = REDIS_RETRY_FIRST_S
        while True:
            await asyncio.sleep(delay)
            if await self._connect() is None:
                log.info("redis_connected", after="retrying")
                return
            delay = min(delay * 2, REDIS_RETRY_MAX_S)

    async def aclose(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        for resource in (self.hub, self.queue):
            if resource is not None:
                with contextlib.suppress(Exception):
                    await resource.aclose()
        self.queue = self.hub = None


@dataclass
class Platform:
    settings: Settings
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    pool: asyncpg.Pool | None = None
    storage: Storage | None = None
    tools: Tools | None = None
    redis: RedisLink | None = None
    upload_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    head_revision: str = ""
    readiness: str = "unknown"

    @property
    def queue(self) -> Queue | None:
        return self.redis.queue if self.redis is not None else None

    @property
    def hub(self) -> ProgressHub | None:
        return self.redis.hub if self.redis is not None else None

    def observe_readiness(self, status: str) -> None:
        """Log readiness when it changes, so a flapping dependency shows as a few lines, not thousands."""
        if status != self.readiness:
            previous, self.readiness = self.readiness, status
            level = "info" if status == "ok" else "warning"
            getattr(log, level)("readiness_changed", status=status, previous=previous)


@contextlib.asynccontextmanager
async def open_platform(platform: Platform) -> AsyncIterator[Platform]:
    """Open everything the API needs; close it in reverse. Only a configuration error stops the start."""
    settings = platform.settings
    platform.head_revision = head_revision()
    platform.tools = find_tools(settings.ffmpeg_path, settings.ffprobe_path)
    platform.upload_dir = _upload_dir(settings)
    async with contextlib.AsyncExitStack() as stack:
        platform.pool = await _open_pool(settings)
        stack.push_async_callback(_close_pool, platform.pool)
        platform.storage = await stack.enter_async_context(open_storage(settings))
        platform.redis = RedisLink(settings.redis_url.get() if settings.redis_url else "")
        stack.push_async_callback(platform.redis.aclose)
        await platform.redis.start()
        log.info(
            "api_started",
            database="reachable" if await _reachable(platform.pool, settings) else "unreachable",
            redis="connected" if platform.queue is not None else "unavailable",
            storage="local" if settings.media_dir is not None else "s3",
        )
        yield platform
    log.info("api_stopped")


async def _open_pool(settings: Settings) -> asyncpg.Pool:
    # min_size=0: connections are made on demand. With a floor, asyncpg would keep re-connecting in the
    # background while PostgreSQL is down and log a traceback at every attempt.
    assert settings.database_url is not None
    return await create_pool(
        settings.database_url.get(),
        min_size=0,
        max_size=settings.db_pool_size,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name="fluxstudio-api",
    )


async def _close_pool(pool: asyncpg.Pool) -> None:
    # close() waits for every connection to be released; a request stuck on a dead server must not
    # hold up the shutdown, so after a while the rest are cut.
    try:
        async with asyncio.timeout(POOL_CLOSE_TIMEOUT_S):
            await pool.close()
    except TimeoutError:
        pool.terminate()


async def _reachable(pool: asyncpg.Pool, settings: Settings) -> bool:
    try:
        async with asyncio.timeout(STARTUP_PROBE_TIMEOUT_S):
            await pool.fetchval("SELECT 1")
    except Exception as exc:
        assert settings.database_url is not None
        log.warning(
            "database_unavailable",
            database=describe(settings.database_url.get()),
            error=getattr(exc, "message", None) or type(exc).__name__,
            retry="on demand: the pool reconnects when PostgreSQL is back",
        )
        return False
    return True


def _upload_dir(settings: Settings) -> Path:
    """Where uploads are spooled: FLUXSTUDIO_HOME/tmp, else the system's temporary folder.

    Temporary files are deleted when their request ends; a process that was killed mid-upload leaves
    one behind, so files of ours older than a day are removed here (no upload takes a day).
    """
    folder = settings.home / "tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError:
        folder = Path(tempfile.gettempdir())
        log.warning("upload_dir_fallback", folder=str(folder))
    cutoff = time.time() - STALE_UPLOAD_S
    for stale in folder.glob(f"{UPLOAD_PREFIX}*{UPLOAD_SUFFIX}"):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
    return folder
