"""Two API processes on one PostgreSQL and Redis serve one room: their clients converge (document and
awareness), each process stores only its own clients' updates, and no token reaches the logs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest
from pycrdt import Array

from tests.fixtures.platform import ApiServer, wait_for
from tests.test_collab import new_owner, stored_items
from tests.test_collab_support import items, js_client, pycrdt_client, wait_items


def ws_url(server: ApiServer) -> str:
    return server.url.replace("http://", "ws://") + "/collab"


@pytest.mark.usefixtures("js_clients")
async def test_two_processes_converge(
    start_api: Callable[..., ApiServer], api_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    first, second = start_api(api_env), start_api(api_env)
    ann = await new_owner(pool)
    # Something stored before anyone else joins, so the second process must load it.
    async with pycrdt_client(ws_url(first), ann.room, ann.token) as doc:
        array = doc.get("items", type=Array)
        for i in range(20):
            array.append(f"first{i}")
        # Now clients on both processes at once: JS on each, pycrdt on the second.
        async with pycrdt_client(ws_url(second), ann.room, ann.token) as other:
            assert len(await wait_items(other, 20)) == 20  # loaded or caught up from the first process
            other.get("items", type=Array).append("second0")
            expect = {"writes": 10, "expect": 41, "expectAwareness": 2}
            on_first, on_second = await asyncio.gather(*(
                js_client(ws_url(server), ann.room, ann.token, prefix=p, **expect)
                for server, p in ((first, "a"), (second, "b"))
            ))
            assert sorted(on_first["items"]) == sorted(on_second["items"])
            assert len(on_first["items"]) == 41
            assert {"a", "b"} <= set(on_first["awareness"]) and {"a", "b"} <= set(on_second["awareness"])
            assert sorted(await wait_items(doc, 41)) == sorted(await wait_items(other, 41))
    # Each process stored its own clients' updates once: together, everything.
    async def all_stored() -> bool:
        return len(await stored_items(pool, ann.room)) == 41

    await wait_for(all_stored, 15, "every update in PostgreSQL")
    assert sorted(await stored_items(pool, ann.room)) == sorted(on_first["items"])
    for server in (first, second):
        log = server.log_text()
        assert ann.token not in log
        events = {r.get("event") for r in server.log_records() if r.get("component") == "collab"}
        assert "collab_left" in events, log[-3000:]


async def test_a_replica_joining_late_catches_up(
    start_api: Callable[..., ApiServer], api_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    first = start_api(api_env)
    ann = await new_owner(pool)
    async with pycrdt_client(ws_url(first), ann.room, ann.token) as doc:
        array = doc.get("items", type=Array)
        second = start_api(api_env)
        for i in range(200):
            array.append(f"x{i}")
        # Joined on the second process while the first may not have stored the last edits yet.
        async with pycrdt_client(ws_url(second), ann.room, ann.token) as other:
            assert sorted(await wait_items(other, 200)) == sorted(items(doc))
