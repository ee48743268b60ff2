"""fluxstudio.queue against real Redis: wake-ups collapse, pub/sub fan-out costs one subscription, and
the hub comes back after Redis does (a private redis-server, never the shared one)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from fluxstudio.errors import Unavailable
from fluxstudio.queue import ProgressHub, Queue, job_channel, redis_client
from tests.fixtures.jobs import PrivateRedis
from tests.fixtures.platform import wait_for


async def test_wake_ups_of_one_attempt_collapse(queue: Queue) -> None:
    assert await queue.wake("job_a", 0) is True
    assert await queue.wake("job_a", 0) is False  # the API retried, or the reconciler raced it
    assert await queue.wake("job_a", 1) is True  # the next attempt is a new wake-up
    assert await queue.depth() == 2
    assert await queue.holds("job_a", 1) and not await queue.holds("job_a", 2)
    raw = await queue.redis.get("arq:job:job_a:0")
    assert raw.startswith(b"{")  # JSON, never pickle


async def test_unreachable_redis_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        await Queue.connect("redis://127.0.0.1:1/0")


async def test_ten_readers_of_one_job_cost_one_subscription(redis_url: str, queue: Queue) -> None:
    hub = ProgressHub(redis_url)
    await hub.start()
    admin = redis.asyncio.Redis.from_url(redis_url)
    channel = job_channel("job_numsub")
    try:
        assert await hub.wait_connected(5)
        entered: list[int] = []
        async with asyncio.TaskGroup() as group:
            readers = [group.create_task(_read(hub, "job_numsub", 3, entered)) for _ in range(10)]
            await wait_for(lambda: _true(len(entered) == 10), 5, "ten readers")
            assert dict(await admin.pubsub_numsub(channel))[channel.encode()] == 1
            for n in range(3):
                await queue.publish("job_numsub", {"event": "progress", "data": {"progress": n / 10}})
        for reader in readers:
            assert [e["data"]["progress"] for e in reader.result()] == [0.0, 0.1, 0.2]
        await wait_for(lambda: _numsub(admin, channel, 0), 5, "the last reader to unsubscribe")
    finally:
        await admin.aclose()
        await hub.aclose()


async def test_hub_reconnects_after_redis_restarts(private_redis: PrivateRedis) -> None:
    hub = ProgressHub(private_redis.url)
    await hub.start()
    queue = Queue(redis_client(private_redis.url))
    try:
        assert await hub.wait_connected(5)
        async with hub.subscribe("job_restart") as events:
            private_redis.stop()
            await wait_for(lambda: _false(hub.connected), 10, "the hub to notice Redis is gone")
            private_redis.start()
            resync = await wait_for(lambda: anext(events), 15, "a resync after reconnecting")
            assert resync == {"event": "resync"}
            await queue.publish("job_restart", {"event": "status", "data": {"n": 1}})
            live = await wait_for(lambda: anext(events), 5, "a live event")
            assert live == {"event": "status", "data": {"n": 1}}
    finally:
        await queue.aclose()
        await hub.aclose()


async def _read(hub: ProgressHub, job_id: str, count: int, entered: list[int]) -> list[dict]:
    async with hub.subscribe(job_id) as events:
        entered.append(1)
        return [await anext(events) for _ in range(count)]


async def _numsub(admin: redis.asyncio.Redis, channel: str, expected: int) -> bool:
    return dict(await admin.pubsub_numsub(channel))[channel.encode()] == expected


async def _false(value: bool) -> bool:
    return not value


async def _true(value: bool) -> bool:
    return value
