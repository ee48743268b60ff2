"""Redis, as the job system uses it: arq wake-ups and pub/sub. Never the truth about a job.

PostgreSQL owns job state (ARCHITECTURE rule 1). Redis only carries three kinds of message, each of which
may be lost without losing a job: an arq job that wakes a worker (`wake`; the reconciler re-wakes a queued
row whose wake-up Redis lost), progress and status events on a per-job channel (`publish`; a late reader
gets the state from PostgreSQL first), and cancel requests (`request_cancel`; the row already says
`cancelled`, and the worker's lease renewal notices it even if the message is lost).

Channels are global across Redis database numbers, so every name carries our prefix and, for the worker
channels, the queue name. Everything is JSON: arq's default pickle would let anyone who can write to Redis
run code in every worker. This module imports nothing from `fluxstudio.studio`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

from fluxstudio.errors import Unavailable
from fluxstudio.log import get_logger

if TYPE_CHECKING:
    from fluxstudio.availability import Availability

DEFAULT_QUEUE = "fluxstudio:queue"
RUN_JOB = "run_job"  # the arq function name the workers register
#: What a broken or unreachable Redis raises through redis-py.
REDIS_ERRORS = (RedisError, OSError, TimeoutError)
#: Every command of every client gets an answer or an error within these: a Redis that hangs (paused,
#: a half-open connection after a failover) is an outage like one that refuses connections.
CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 5.0
#: Pub/sub connections block on reads, so they cannot use the socket timeout to notice a hung Redis:
#: they read in short slices, PING when quiet, and give up when nothing (not even a PONG) came back.
PUBSUB_READ_S = 1.0
PUBSUB_PING_EVERY_S = 5.0
PUBSUB_DEAD_AFTER_S = PUBSUB_PING_EVERY_S + SOCKET_TIMEOUT_S
_HUB_CONTROL = "fluxstudio:hub"  # every hub listens here, so its connection exists before any reader
_READY_TIMEOUT_S = 2.0
_INBOX_SIZE = 1000
_MAX_BACKOFF_S = 5.0

log = get_logger()


def job_channel(job_id: str) -> str:
    return f"fluxstudio:job:{job_id}"


def asset_channel(asset_id: str) -> str:
    """An asset's changes (comments, a new job) for the asset's event streams on every replica."""
    return f"fluxstudio:asset:{asset_id}"


def cancel_channel(queue_name: str) -> str:
    return f"{queue_name}:cancel"


def wake_channel(queue_name: str) -> str:
    return f"{queue_name}:wake"


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def loads(data: bytes | str) -> Any:
    return json.loads(data)


def redis_client(redis_url: str, queue_name: str = DEFAULT_QUEUE) -> ArqRedis:
    """An ArqRedis (a redis.asyncio.Redis) with JSON job serialisation. Connects lazily.

    The one way every part of FluxStudio (API, workers, collab relay, doctor) makes a Redis client, so
    each gets the connect and socket timeouts.
    """
    pool = ConnectionPool.from_url(
        redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=10,
    )
    return ArqRedis(pool, job_serializer=dumps, job_deserializer=loads, default_queue_name=queue_name)


async def pump(pubsub: Any, dispatch: Callable[[dict[str, Any]], None]) -> None:
    """Read a subscribed pub/sub connection forever, handing each message to `dispatch`; raises
    TimeoutError once Redis has said nothing, not even PONG to our PING, for PUBSUB_DEAD_AFTER_S."""
    heard = pinged = time.monotonic()
    while True:
        message = await pubsub.get_message(timeout=PUBSUB_READ_S)
        now = time.monotonic()
        if message is not None:
            heard = now
            if message.get("type") != "pong":
                dispatch(message)
        elif now - heard > PUBSUB_DEAD_AFTER_S:
            raise TimeoutError(f"Redis sent nothing on a pub/sub connection for {PUBSUB_DEAD_AFTER_S:g} s")
        if now - pinged >= PUBSUB_PING_EVERY_S:
            pinged = now
            await pubsub.ping(b"fluxstudio")  # our own payload: redis-py filters its health-check PONGs


class Queue:
    """One per process: wakes workers, publishes job events, delivers cancel requests."""

    def __init__(self, redis: ArqRedis, queue_name: str = DEFAULT_QUEUE) -> None:
        self.redis = redis
        self.queue_name = queue_name

    @classmethod
    def lazy(cls, redis_url: str, *, queue_name: str = DEFAULT_QUEUE) -> Queue:
        """A queue that connects on first use and again after every outage: for a process that must
        start, degraded, while Redis is down (each call raises Unavailable until it is back)."""
        return cls(redis_client(redis_url, queue_name), queue_name)

    @classmethod
    async def connect(cls, redis_url: str, *, queue_name: str = DEFAULT_QUEUE) -> Queue:
        """A connected queue, or Unavailable (the caller decides whether to run degraded)."""
        queue = cls.lazy(redis_url, queue_name=queue_name)
        try:
            await queue.ping()
        except Unavailable:
            await queue.aclose()
            raise
        return queue

    async def wake(self, job_id: str, attempt: int, *, defer_s: float | None = None) -> bool:
        """Ask a worker to run job `job_id`; False if a wake-up for this attempt is already queued.

        The arq id `{job_id}:{attempt}` makes duplicate wake-ups (API retry, reconciler) collapse, and
        changes whenever the row goes back to `queued`, so a new wake-up never collides with the arq job
        of the run that is still finishing.
        """
        try:
            job = await self.redis.enqueue_job(
                RUN_JOB,
                job_id,
                _job_id=f"{job_id}:{attempt}",
                _queue_name=self.queue_name,
                _defer_by=defer_s if defer_s and defer_s > 0 else None,
            )
            if job is not None and not defer_s:
                # Idle workers block on this channel, so a job starts in milliseconds, not a poll period.
                await self.redis.publish(wake_channel(self.queue_name), b"1")
        except REDIS_ERRORS as exc:
            raise Unavailable(f"Redis is unavailable, job {job_id} waits for the reconciler: {exc}") from exc
        return job is not None

    async def holds(self, job_id: str, attempt: int) -> bool:
        """Whether Redis still has the wake-up of this attempt (queued, deferred or being taken)."""
        return (await self.holding([(job_id, attempt)]))[0]

    async def holding(self, wakeups: list[tuple[str, int]]) -> list[bool]:
        """`holds` for many (job id, attempt) pairs in one round trip."""
        if not wakeups:
            return []
        try:
            pipe = self.redis.pipeline(transaction=False)
            for job_id, attempt in wakeups:
                pipe.exists(f"{job_key_prefix}{job_id}:{attempt}")
            return [bool(found) for found in await pipe.execute()]
        except REDIS_ERRORS as exc:
            raise Unavailable(f"Redis is unavailable: {exc}") from exc

    async def publish(self, job_id: str, event: dict[str, Any]) -> None:
        """Publish `{"event": name, "data": {...}}` to the job's channel; lost if nobody listens."""
        try:
            await self.redis.publish(job_channel(job_id), dumps(event))
        except REDIS_ERRORS as exc:
            raise Unavailable(f"Redis is unavailable: {exc}") from exc

    async def announce(self, channel: str, event: dict[str, Any]) -> None:
        """Publish `{"event": name, "data": {...}}` on any of our channels (an asset's, for its streams)."""
        try:
            await self.redis.publish(channel, dumps(event))
        except REDIS_ERRORS as exc:
            raise Unavailable(f"Redis is unavailable: {exc}") from exc

    async def request_cancel(self, job_id: str) -> None:
        """Tell whichever worker runs `job_id` to stop it now (the row is already `cancelled`)."""
        try:
            await self.redis.publish(cancel_channel(self.queue_name), dumps(job_id))
        except REDIS_ERRORS as exc:
            raise Unavailable(f"Redis is unavailable: {exc}") from exc

    async def depth(self) -> int:
        """Wake-ups waiting in Redis (for metrics and doctor)."""
        try:
            return int(await self.redis.zcard(self.queue_name))
        except REDIS_ERRORS as exc:
            raise Unavailable(f"Redis is unavailable: {exc}") from exc

    async def ping(self) -> float:
        """Round trip in seconds."""
        started = time.perf_counter()
        try:
            await self.redis.ping()
        except REDIS_ERRORS as exc:
            raise Unavailable(f"Redis is unavailable: {exc}") from exc
        return time.perf_counter() - started

    async def aclose(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            await self.redis.aclose(close_connection_pool=True)


@dataclass
class _Channel:
    readers: set[asyncio.Queue[dict[str, Any]]] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


RESYNC: dict[str, Any] = {"event": "resync"}


class ProgressHub:
    """One Redis pub/sub connection per process, shared by every reader: N readers of a job cost one
    subscription. When Redis goes away the hub reconnects with a bounded back-off, subscribes again and
    hands each reader `{"event": "resync"}`, because events published meanwhile are lost: the reader
    re-reads the row from PostgreSQL.
    """

    def __init__(self, redis_url: str, *, availability: Availability | None = None) -> None:
        """With `availability` (a worker), outages are reported there, logged once for the whole
        process; without it (the API) the hub logs its own."""
        self._redis_url = redis_url
        self._availability = availability
        self._channels: dict[str, _Channel] = {}
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._send_lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Start the listener; returns at once even if Redis is down (it keeps trying)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="progress-hub")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def wait_connected(self, within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._connected.wait()
        return self.connected

    def subscribe(self, job_id: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """`async with hub.subscribe(job_id) as events: async for event in events: ...`

        On entry the subscription is confirmed by Redis (or Redis is down), so a caller that reads the
        row afterwards cannot miss an event published after that read.
        """
        return self.listen(job_channel(job_id))

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Any channel (workers listen to their queue's cancel and wake channels)."""
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_INBOX_SIZE)
        entry = self._channels.get(channel)
        if entry is None:
            entry = self._channels[channel] = _Channel()
            await self._send("subscribe", channel)
        entry.readers.add(inbox)
        try:
            if self.connected:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_READY_TIMEOUT_S):
                        await entry.ready.wait()
            yield _Inbox(inbox)
        finally:
            entry.readers.discard(inbox)
            if not entry.readers and self._channels.get(channel) is entry:
                del self._channels[channel]
                await self._send("unsubscribe", channel)

    async def _send(self, command: str, channel: str) -> None:
        # Sent from the caller's task while the listener reads: redis-py writes and reads a pub/sub
        # connection independently. The lock keeps two senders from racing to open the connection.
        # Without a connection the listener subscribes every channel when it (re)connects.
        async with self._send_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            with contextlib.suppress(*REDIS_ERRORS):
                await getattr(pubsub, command)(channel)

    async def _run(self) -> None:
        delay, down_logged = 0.1, False
        while True:
            try:
                await self._listen_once()
            except REDIS_ERRORS as exc:
                if self.connected:  # we were up: a new outage, logged once, back-off starts over
                    delay, down_logged = 0.1, False
                if self._availability is not None:
                    self._availability.lost("redis", exc)
                elif not down_logged:
                    down_logged = True
                    log.warning("redis_pubsub_unavailable", error=str(exc) or type(exc).__name__)
            self._connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    async def _listen_once(self) -> None:
        client = redis_client(self._redis_url)
        pubsub = client.pubsub()
        try:
            async with self._send_lock:
                self._pubsub = pubsub  # from here on, new channels are sent by `_send`
                for entry in self._channels.values():
                    entry.ready.clear()
                await pubsub.subscribe(_HUB_CONTROL, *self._channels)
            await pump(pubsub, self._dispatch)
        finally:
            self._pubsub = None
            with contextlib.suppress(*REDIS_ERRORS, RuntimeError):
                await pubsub.aclose()
            with contextlib.suppress(*REDIS_ERRORS):
                await client.aclose(close_connection_pool=True)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        if kind == "subscribe" and channel == _HUB_CONTROL:
            self._on_connected()
            return
        entry = self._channels.get(channel)
        if entry is None:
            return
        if kind == "subscribe":
            entry.ready.set()
        elif kind == "message":
            try:
                event = loads(message["data"])
            except ValueError:
                return
            for inbox in list(entry.readers):
                with contextlib.suppress(asyncio.QueueFull):  # a stuck reader loses events, not the hub
                    inbox.put_nowait(event)

    def _on_connected(self) -> None:
        reconnected = self._connected_before
        self._connected_before = True
        self._connected.set()
        if self._availability is not None:
            self._availability.back("redis")
        if reconnected:
            if self._availability is None:
                log.info("redis_pubsub_restored", channels=len(self._channels))
            for entry in self._channels.values():
                for inbox in list(entry.readers):
                    with contextlib.suppress(asyncio.QueueFull):
                        inbox.put_nowait(RESYNC)

    _connected_before = False


class _Inbox:
    """A reader's view of its channel. Not an async generator: a reader may wrap `anext()` in a timeout,
    and cancelling a generator's `anext` would close it for good."""

    def __init__(self, inbox: asyncio.Queue[dict[str, Any]]) -> None:
        self._inbox = inbox

    def __aiter__(self) -> _Inbox:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._inbox.get()
