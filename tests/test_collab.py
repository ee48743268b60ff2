"""Collaboration rooms at /collab with real clients over loopback: admission and close codes, room tokens,
convergence of JavaScript y-websocket and pycrdt clients, persistence through unload and restart,
concurrent first joins, churn, and rooms unloading under load."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from pycrdt import Array, Doc

from fluxstudio.collab import CollabOptions
from fluxstudio.studio.projects import create_project
from fluxstudio.studio.tokens import create_token
from fluxstudio.studio.users import User, ensure_user
from tests.test_collab_support import (
    LocalApi,
    close_code,
    items,
    js_client,
    pycrdt_client,
    start_local_api,
    wait_items,
)

FAST = CollabOptions(idle_s=0.3, flush_every_s=0.2, resync_every_s=1.0)
_names = itertools.count()


@dataclass
class Owner:
    user: User
    token: str
    project_id: str

    @property
    def room(self) -> str:
        return f"project:{self.project_id}"


async def new_owner(pool: asyncpg.Pool) -> Owner:
    email = f"collab-{next(_names)}-{os.getpid()}@example.com"
    _, token = await create_token(pool, "collab tests", email=email)
    user = await ensure_user(pool, email)
    project = await create_project(pool, user, "doc")
    return Owner(user, token, project.id)


@pytest.fixture(scope="module")
async def local_api(api_env: dict[str, str]) -> AsyncIterator[LocalApi]:
    api = await start_local_api(api_env, FAST)
    yield api
    await api.stop()


async def test_close_codes_come_before_any_document_data(local_api: LocalApi, pool: asyncpg.Pool) -> None:
    ann, bob = await new_owner(pool), await new_owner(pool)
    url = local_api.ws_url
    assert await close_code(url, ann.room, None) == (4401, [])
    assert await close_code(url, ann.room, "fs_not-a-token") == (4401, [])
    assert await close_code(url, ann.room, bob.token) == (4403, [])
    assert await close_code(url, "project:nope", ann.token) == (4403, [])
    assert await close_code(url, "not-a-room", ann.token) == (4403, [])


@pytest.mark.usefixtures("js_clients")
async def test_the_js_provider_sees_the_close_codes(local_api: LocalApi, pool: asyncpg.Pool) -> None:
    """A close before accepting would be an HTTP 403 to the y-websocket provider; it must see the code."""
    ann, bob = await new_owner(pool), await new_owner(pool)
    url = local_api.ws_url
    assert (await js_client(url, ann.room, "fs_bad"))["closed"] == 4401
    assert (await js_client(url, ann.room, bob.token))["closed"] == 4403


@pytest.mark.usefixtures("js_clients")
async def test_js_and_pycrdt_clients_converge(local_api: LocalApi, pool: asyncpg.Pool) -> None:
    ann = await new_owner(pool)
    async with pycrdt_client(local_api.ws_url, ann.room, ann.token) as doc:
        array = doc.get("items", type=Array)
        for i in range(5):
            array.append(f"py{i}")
        first, second = await asyncio.gather(*(
            js_client(local_api.ws_url, ann.room, ann.token, writes=5, prefix=p, expect=15, expectAwareness=2)
            for p in ("a", "b")
        ))
        final = await wait_items(doc, 15)
    assert sorted(first["items"]) == sorted(second["items"]) == sorted(final)
    assert {f"{p}{i}" for p in ("a", "b", "py") for i in range(5)} == set(final)
    assert {"a", "b"} <= set(first["awareness"]) and {"a", "b"} <= set(second["awareness"])


async def stored_items(pool: asyncpg.Pool, room: str) -> list[object]:
    """What PostgreSQL holds for a room, read as a document."""
    doc: Doc = Doc()
    snapshot = await pool.fetchval("SELECT state FROM collab_snapshots WHERE room = $1", room)
    for update in ([snapshot] if snapshot else []) + [
        row["update"] for row in await pool.fetch("SELECT update FROM collab_updates WHERE room = $1", room)
    ]:
        doc.apply_update(update)
    return items(doc)


async def write_and_leave(api: LocalApi, owner: Owner, count: int, prefix: str = "u") -> None:
    async with pycrdt_client(api.ws_url, owner.room, owner.token) as doc:
        array = doc.get("items", type=Array)
        for i in range(count):
            array.append(f"{prefix}{i}")  # one transaction, one message each


async def test_room_tokens_open_one_room_only(local_api: LocalApi, pool: asyncpg.Pool) -> None:
    ann, bob = await new_owner(pool), await new_owner(pool)
    other_room = f"project:{(await create_project(pool, ann.user, 'other')).id}"
    headers = {"Authorization": f"Bearer {ann.token}"}
    async with httpx.AsyncClient(base_url=local_api.url, headers=headers) as http:
        response = await http.post("/api/v1/collab/tokens", json={"room": ann.room})
        assert response.status_code == 201, response.text
        grant = response.json()
        assert grant["token"].startswith("rt_") and grant["expires_at"].endswith(("Z", "+00:00"))
        assert (await http.post("/api/v1/collab/tokens", json={"room": bob.room})).status_code == 404
        assert (await http.post("/api/v1/collab/tokens", json={"room": "nonsense"})).status_code == 422
        assert (await http.post("/api/v1/collab/tokens", json={"room": ann.room},
                                headers={"Authorization": "Bearer nope"})).status_code == 401
    async with pycrdt_client(local_api.ws_url, ann.room, grant["token"]) as doc:
        assert items(doc) == []
    assert await close_code(local_api.ws_url, other_room, grant["token"]) == (4403, [])
    forged = grant["token"][:-4] + ("AAAA" if not grant["token"].endswith("AAAA") else "BBBB")
    assert await close_code(local_api.ws_url, ann.room, forged) == (4401, [])
    token_id = grant["token"][3:].split(".")[0]
    await pool.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", token_id)
    assert await close_code(local_api.ws_url, ann.room, grant["token"]) == (4401, [])


async def test_every_update_survives_leaving_unloading_and_a_restart(
    api_env: dict[str, str], local_api: LocalApi, pool: asyncpg.Pool
) -> None:
    # Leave at once, then the room unloads (idle 0.3 s): all 1000 are in PostgreSQL.
    ann = await new_owner(pool)
    await write_and_leave(local_api, ann, 1000)
    stored = await _eventually(lambda: stored_items(pool, ann.room), lambda got: len(got) == 1000)
    assert sorted(stored) == sorted(f"u{i}" for i in range(1000))
    # A server that never unloads the room is stopped right after the client left: the final flush.
    bob = await new_owner(pool)
    keeper = await start_local_api(api_env, CollabOptions(idle_s=3600, flush_every_s=3600))
    await write_and_leave(keeper, bob, 1000)
    await keeper.stop()
    restarted = await start_local_api(api_env, CollabOptions(idle_s=3600))
    try:
        async with pycrdt_client(restarted.ws_url, bob.room, bob.token) as doc:
            assert len(items(doc)) == 1000
        async with pycrdt_client(restarted.ws_url, ann.room, ann.token) as doc:
            assert len(items(doc)) == 1000
    finally:
        await restarted.stop()
    assert len(await stored_items(pool, bob.room)) == 1000


async def test_concurrent_first_joins_always_sync(local_api: LocalApi, pool: asyncpg.Pool) -> None:
    owners = [await new_owner(pool) for _ in range(50)]

    async def join(owner: Owner, name: str) -> list[object]:
        async with pycrdt_client(local_api.ws_url, owner.room, owner.token) as doc:
            doc.get("items", type=Array).append(name)
            return await wait_items(doc, 2, within_s=5)

    for owner in owners:
        first, second = await asyncio.gather(join(owner, "a"), join(owner, "b"))
        assert sorted(first) == sorted(second) == ["a", "b"]


async def test_churn_loses_no_update(local_api: LocalApi, pool: asyncpg.Pool) -> None:
    ann = await new_owner(pool)

    async def visitor(n: int) -> None:
        for round_ in range(5):
            await write_and_leave(local_api, ann, 2, prefix=f"v{n}.{round_}.")

    async with pycrdt_client(local_api.ws_url, ann.room, ann.token) as doc:
        array = doc.get("items", type=Array)

        async def writer() -> None:
            for i in range(300):
                array.append(f"w{i}")
                if i % 10 == 0:
                    await asyncio.sleep(0)  # let the visitors in between edits

        await asyncio.gather(writer(), *(visitor(n) for n in range(10)))
        assert len(await wait_items(doc, 400)) == 400
    stored = await _eventually(lambda: stored_items(pool, ann.room), lambda got: len(got) == 400)
    assert len(set(stored)) == 400


async def test_rooms_unload_under_load_without_harm(api_env: dict[str, str], pool: asyncpg.Pool) -> None:
    api = await start_local_api(api_env, CollabOptions(idle_s=0.02, flush_every_s=0.05))
    owners = [await new_owner(pool) for _ in range(8)]
    try:
        async def churn(owner: Owner, n: int) -> None:
            for round_ in range(6):
                await write_and_leave(api, owner, 3, prefix=f"{n}.{round_}.")

        await asyncio.gather(*(churn(owner, n) for owner in owners for n in range(3)))
        for owner in owners:
            async with pycrdt_client(api.ws_url, owner.room, owner.token) as doc:
                assert len(await wait_items(doc, 54)) == 54
        async with httpx.AsyncClient(base_url=api.url) as http:
            assert (await http.get("/healthz")).status_code == 200
            metrics = (await http.get("/metrics")).text
        assert "fluxstudio_collab_connections 0.0" in metrics
        assert "fluxstudio_collab_rooms" in metrics
    finally:
        await api.stop()
    for owner in owners:
        assert len(await stored_items(pool, owner.room)) == 54


async def test_metrics_count_connections_and_rooms(local_api: LocalApi, pool: asyncpg.Pool) -> None:
    ann = await new_owner(pool)
    connected = pycrdt_client(local_api.ws_url, ann.room, ann.token)
    async with connected, httpx.AsyncClient(base_url=local_api.url) as http:
        metrics = (await http.get("/metrics")).text
    assert "fluxstudio_collab_connections 1.0" in metrics
    assert any(line.startswith("fluxstudio_collab_rooms ") and float(line.split()[1]) >= 1
               for line in metrics.splitlines())


async def _eventually(read, good, within_s: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = await read()
        if good(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)
