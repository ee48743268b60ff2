"""Redis clients with timeouts, against a private redis-server paused with SIGSTOP (SIGCONT in `finally`).

Commands fail within the socket timeout instead of hanging; the pub/sub hub, whose reads block by
design, neither dies of the socket timeout while idle nor stays "connected" to a Redis that hangs: it
notices the silence (no PONG to its PING), reconnects once Redis answers, and tells readers to resync.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from fluxstudio.errors import Unavailable
from fluxstudio.queue import PUBSUB_DEAD_AFTER_S, RESYNC, SOCKET_TIMEOUT_S, ProgressHub, Queue
from tests.fixtures.jobs import PrivateRedis
from tests.fixtures.platform import wait_for

pytestmark = pytest.mark.slow


async def test_a_command_to_a_paused_redis_fails_within_the_socket_timeout(
    private_redis: PrivateRedis,
) -> None:
    queue = await Queue.connect(private_redis.url)
    assert private_redis.proc is not None
    os.kill(private_redis.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await queue.ping()
        assert time.monotonic() - started < SOCKET_TIMEOUT_S + 2
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)
    assert await queue.ping() >= 0  # the client recovers by itself
    await queue.aclose()


async def test_the_hub_outlives_quiet_and_notices_a_hang(private_redis: PrivateRedis) -> None:
    hub = ProgressHub(private_redis.url)
    await hub.start()
    queue = await Queue.connect(private_redis.url)
    try:
        assert await hub.wait_connected(5)
        async with hub.subscribe("job_quiet") as events:
            # Quiet for longer than the socket timeout: a blocking read must not count as a failure.
            quiet_until = time.monotonic() + SOCKET_TIMEOUT_S + 2
            await wait_for(lambda: time.monotonic() > quiet_until, SOCKET_TIMEOUT_S + 5, "a quiet spell", 0.2)
            assert hub.connected
            await queue.publish("job_quiet", {"event": "progress", "data": {"n": 1}})
            assert (await asyncio.wait_for(anext(events), 5))["data"] == {"n": 1}

            assert private_redis.proc is not None
            os.kill(private_redis.proc.pid, signal.SIGSTOP)
            try:
                await wait_for(lambda: not hub.connected, PUBSUB_DEAD_AFTER_S + 10, "the hub to notice")
            finally:
                os.kill(private_redis.proc.pid, signal.SIGCONT)
            assert await hub.wait_connected(20)
            assert await asyncio.wait_for(anext(events), 10) == RESYNC  # events may have been lost
            await queue.publish("job_quiet", {"event": "progress", "data": {"n": 2}})
            assert (await asyncio.wait_for(anext(events), 5))["data"] == {"n": 2}
    finally:
        await queue.aclose()
        await hub.aclose()
