"""Collaboration through a Redis outage: two API processes share a room through Redis, reached through a
proxy that the test cuts. While Redis is away, the clients of each process keep collaborating and their
edits are stored in PostgreSQL; once it is back, the resync brings the two processes together again."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from pycrdt import Array, Doc

from fluxstudio.collab import CollabOptions
from tests.fixtures.platform import TcpProxy, redis_target, wait_for
from tests.test_collab import new_owner, stored_items
from tests.test_collab_support import items, pycrdt_client, start_local_api, wait_items

OPTIONS = CollabOptions(idle_s=60, flush_every_s=0.1, resync_every_s=1.0)


def append(doc: Doc, *values: str) -> None:
    array = doc.get("items", type=Array)
    for value in values:
        array.append(value)


async def test_rooms_work_through_a_redis_outage_and_replicas_converge_after(
    api_env: dict[str, str], pool: asyncpg.Pool, tcp_proxy: Callable[..., TcpProxy]
) -> None:
    target, url_template = redis_target(api_env["REDIS_URL"])
    proxy = tcp_proxy(target)
    env = {**api_env, "REDIS_URL": url_template.format(port=proxy.port)}
    first = await start_local_api(env, OPTIONS)
    second = await start_local_api(env, OPTIONS)
    ann = await new_owner(pool)
    try:
        async with (
            pycrdt_client(first.ws_url, ann.room, ann.token) as on_first,
            pycrdt_client(second.ws_url, ann.room, ann.token) as on_second,
        ):
            append(on_first, "before")
            assert await wait_items(on_second, 1) == ["before"]  # relayed while Redis is there

            proxy.cut()
            cut_on_first = [f"first{i}" for i in range(5)]
            cut_on_second = [f"second{i}" for i in range(5)]
            append(on_first, *cut_on_first)
            append(on_second, *cut_on_second)
            # One process, two clients (one joining during the outage): they collaborate as before.
            async with pycrdt_client(first.ws_url, ann.room, ann.token) as also_on_first:
                assert sorted(await wait_items(also_on_first, 6)) == sorted(["before", *cut_on_first])
                append(also_on_first, "joined-in-outage")
                await wait_for(lambda: "joined-in-outage" in items(on_first), 10, "an edit on one process")
            # Each process stores its own clients' edits without Redis.
            everything = sorted(["before", *cut_on_first, *cut_on_second, "joined-in-outage"])

            async def all_stored() -> bool:
                return sorted(await stored_items(pool, ann.room)) == everything

            await wait_for(all_stored, 10, "every edit of the outage in PostgreSQL")
            # Nothing crossed between the processes meanwhile: the cut was real.
            assert not set(cut_on_first) & set(items(on_second))
            assert not set(cut_on_second) & set(items(on_first))

            proxy.restore()
            await wait_for(lambda: sorted(items(on_first)) == everything, 20, "the first process resynced")
            await wait_for(lambda: sorted(items(on_second)) == everything, 20, "the second process resynced")
            # And the relay works live again, both ways.
            append(on_second, "after")
            append(on_first, "after-too")
            await wait_for(lambda: {"after", "after-too"} <= set(items(on_first)), 10, "live relay to first")
            await wait_for(lambda: {"after", "after-too"} <= set(items(on_second)), 10, "live relay too")
    finally:
        await first.stop()
        await second.stop()
    stored = await stored_items(pool, ann.room)
    assert sorted(stored) == sorted([*everything, "after", "after-too"])  # each edit stored exactly once
