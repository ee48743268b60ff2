"""The limits of `/collab` with small values, seen from real sockets: a message over `max_message_bytes`
closes its socket with 1009 and none of it reaches the document, the store or anyone else; past
`messages_per_s` the server reads more slowly but every update still arrives; a join past
`rooms_per_process` is refused with 1013 while the rooms already loaded keep working."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
from pycrdt import Array, Doc, YMessageType, create_update_message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fluxstudio.collab import CollabOptions, Limits
from tests.fixtures.platform import wait_for
from tests.test_collab import new_owner, stored_items
from tests.test_collab_support import close_code, pycrdt_client, start_local_api, wait_items

MAX_MESSAGE = 4096
RATE, BURST = 100.0, 10
ROOMS = 2
SMALL = CollabOptions(
    limits=Limits(max_message_bytes=MAX_MESSAGE, messages_per_s=RATE, burst=BURST, rooms_per_process=ROOMS),
    idle_s=0.3, flush_every_s=0.1, resync_every_s=1.0,
)


@contextlib.asynccontextmanager
async def raw_socket(ws_url: str, room: str, token: str) -> AsyncIterator[ClientConnection]:
    """A socket that speaks only what the test sends; the server's opening sync step 1 is read first."""
    async with connect(f"{ws_url}/{room}?token={token}", max_size=None) as ws:
        first = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(first, bytes) and first[0] == YMessageType.SYNC
        yield ws


class Writer:
    """Makes update messages the way a client would, one transaction (one message) per item."""

    def __init__(self) -> None:
        self.doc: Doc = Doc()
        self.array = self.doc.get("items", type=Array)

    def append(self, item: str) -> bytes:
        before = self.doc.get_state()
        self.array.append(item)
        return create_update_message(self.doc.get_update(before))


async def closed_with(ws: ClientConnection) -> int | None:
    """Read until the server closes the socket; its close code."""
    with contextlib.suppress(ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    return ws.close_code


async def test_a_message_over_the_limit_closes_1009_and_goes_nowhere(
    api_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    api = await start_local_api(api_env, SMALL)
    ann = await new_owner(pool)
    try:
        async with pycrdt_client(api.ws_url, ann.room, ann.token) as watcher:
            writer = Writer()
            async with raw_socket(api.ws_url, ann.room, ann.token) as ws:
                await ws.send(writer.append("small"))
                huge = writer.append("x" * (2 * MAX_MESSAGE))
                assert len(huge) > MAX_MESSAGE
                await ws.send(huge)
                assert await closed_with(ws) == 1009
            assert await wait_items(watcher, 1) == ["small"]
            # A marker after the big message: once it is here, the big one would have been too.
            watcher.get("items", type=Array).append("after")
            async with pycrdt_client(api.ws_url, ann.room, ann.token) as late:
                assert sorted(await wait_items(late, 2)) == ["after", "small"]
            assert sorted(await wait_items(watcher, 2)) == ["after", "small"]
        await api.stop()  # the final flush: the store holds all it ever will
        assert sorted(await stored_items(pool, ann.room)) == ["after", "small"]
    finally:
        if not api.task.done():
            await api.stop()


async def test_past_the_rate_reading_slows_and_nothing_is_dropped(
    api_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    api = await start_local_api(api_env, SMALL)
    ann = await new_owner(pool)
    count = 150
    try:
        async with pycrdt_client(api.ws_url, ann.room, ann.token) as watcher:
            writer = Writer()
            messages = [writer.append(f"m{i}") for i in range(count)]
            async with raw_socket(api.ws_url, ann.room, ann.token) as ws:
                started = time.monotonic()
                for message in messages:
                    await ws.send(message)
                sent = time.monotonic() - started
                assert sorted(await wait_items(watcher, count, within_s=20)) == sorted(
                    f"m{i}" for i in range(count)
                )
                took = time.monotonic() - started
                # Still open: slowed down, not cut off (a ping needs the server to read the socket).
                await asyncio.wait_for(await ws.ping(), 10)
        # The bucket lets BURST through at once, then RATE per second: (150 - 10) / 100 = 1.4 s at least.
        floor = (count - BURST) / RATE
        assert took >= 0.9 * floor, (took, floor)
        assert sent < took  # the client wrote faster than the server read: TCP held the rest
        await wait_for(lambda: _stored_count(pool, ann.room, count), 10, f"{count} stored items")
    finally:
        await api.stop()


async def opens(ws_url: str, room: str, token: str) -> bool:
    """Whether the server lets a socket into `room` (it sends the document) rather than closing it."""
    async with connect(f"{ws_url}/{room}?token={token}") as ws:
        try:
            return isinstance(await asyncio.wait_for(ws.recv(), 10), bytes)
        except ConnectionClosed:
            assert ws.close_code == 1013
            return False


async def _stored_count(pool: asyncpg.Pool, room: str, count: int) -> bool:
    return len(await stored_items(pool, room)) == count


async def test_a_room_past_the_limit_is_refused_1013_and_loaded_rooms_keep_working(
    api_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    api = await start_local_api(api_env, SMALL)
    owners = [await new_owner(pool) for _ in range(ROOMS + 1)]
    first, second, third = owners
    try:
        async with (
            pycrdt_client(api.ws_url, first.room, first.token) as one,
            pycrdt_client(api.ws_url, second.room, second.token) as two,
        ):
            assert await close_code(api.ws_url, third.room, third.token) == (1013, [])
            # The loaded rooms still take edits and pass them on, to new sockets as well.
            one.get("items", type=Array).append("one")
            two.get("items", type=Array).append("two")
            async with pycrdt_client(api.ws_url, first.room, first.token) as again:
                assert await wait_items(again, 1) == ["one"]
            async with pycrdt_client(api.ws_url, second.room, second.token) as again:
                assert await wait_items(again, 1) == ["two"]
            assert await close_code(api.ws_url, third.room, third.token) == (1013, [])
        # Once the others unload (idle 0.3 s), the third room opens.
        await wait_for(lambda: opens(api.ws_url, third.room, third.token), 15,
                       "the third room to open once the others unloaded", every=0.2)
    finally:
        await api.stop()
