"""Memory stays flat when thousands of short-lived rooms come and go (issue 4, room lifecycle).

One API process (a subprocess, so its RSS is the server's alone) with a short idle time serves 2000 rooms
that each live for one socket: join, one update, leave, unload. After a warm-up round (caches, pools,
allocator arenas), its RSS and the rooms gauge must come back near where they were.

Threshold: RSS may grow by at most 16 MiB over the 2000 rooms (8 KiB a room). A loaded room (document,
awareness, subscription, task group) costs far more than that (the test measures it while 200 rooms are
held: about 40 KiB each here), so a room that is never freed fails the test, while the allocator's
noise (a few MiB of fragmentation, which CPython does not give back) passes.
Run by hand with `-s` to see the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from pycrdt import Array, Doc, create_update_message
from websockets.asyncio.client import connect

from fluxstudio.studio.projects import create_project
from tests.fixtures.platform import REPO, START_TIMEOUT_S, bound_socket, wait_for
from tests.test_collab import new_owner

ROOMS = 2000
WARM_UP = 500
HELD = 200
PARALLEL = 16
MAX_GROWTH = 16 << 20
IDLE_S = 0.05


def _serve(fd: int) -> None:
    """The API with a short idle time: `python -m tests.test_collab_rooms_memory FD`."""
    import uvicorn

    from fluxstudio.app import create_app
    from fluxstudio.collab import CollabOptions, collab_surface
    from fluxstudio.config import load_settings
    from fluxstudio.log import configure_logging

    settings = load_settings("api", os.environ)
    configure_logging("api", fmt=settings.log_format, level=settings.log_level)
    options = CollabOptions(idle_s=IDLE_S, flush_every_s=0.05)
    app = create_app(settings, surfaces=[lambda s: collab_surface(s, options)])
    config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=3)
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


@pytest.fixture
def server(api_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(url, pid) of the API process; warnings only in its log, so logging costs no memory."""
    sock = bound_socket()
    env = {**os.environ, **api_env, "PYTHONPATH": str(REPO), "LOG_LEVEL": "warning"}
    with (tmp_path / "api.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.test_collab_rooms_memory", str(sock.fileno())],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, pass_fds=[sock.fileno()],
        )
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "api.log").read_text()
            time.sleep(0.05)  # polling a condition with a deadline
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _healthy(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    return False


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def gauges(http: httpx.AsyncClient) -> dict[str, float]:
    text = (await http.get("/metrics")).text
    return {
        name: float(line.split()[1]) for line in text.splitlines()
        for name in ("fluxstudio_collab_rooms", "fluxstudio_collab_connections")
        if line.startswith(name + " ")
    }


async def visit(ws_url: str, room: str, token: str, item: str) -> None:
    """Join, make one edit, leave: what a short-lived room sees."""
    doc: Doc = Doc()
    doc.get("items", type=Array).append(item)
    async with connect(f"{ws_url}/{room}?token={token}") as ws:
        await asyncio.wait_for(ws.recv(), 10)  # the server's sync step 1: the room is loaded
        await ws.send(create_update_message(doc.get_update()))


async def churn(ws_url: str, rooms: list[str], token: str) -> None:
    queue = iter(rooms)

    async def lane() -> None:
        for room in queue:
            await visit(ws_url, room, token, room)

    await asyncio.gather(*(lane() for _ in range(PARALLEL)))


async def test_memory_stays_flat_while_thousands_of_rooms_come_and_go(
    server: tuple[str, int], pool: asyncpg.Pool
) -> None:
    url, pid = server
    ws_url = url.replace("http://", "ws://") + "/collab"
    owner = await new_owner(pool)
    projects = [await create_project(pool, owner.user, f"r{i}") for i in range(WARM_UP + ROOMS)]
    rooms = [f"project:{p.id}" for p in projects]
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        async def unloaded() -> bool:
            return await gauges(http) == {"fluxstudio_collab_rooms": 0, "fluxstudio_collab_connections": 0}

        await churn(ws_url, rooms[:WARM_UP], owner.token)
        await wait_for(unloaded, 20, "every warm-up room unloaded")

        # What a room costs while loaded: HELD rooms at once, each with a socket open.
        before = rss(pid)
        async with contextlib.AsyncExitStack() as held:
            for room in rooms[:HELD]:
                ws = await held.enter_async_context(connect(f"{ws_url}/{room}?token={owner.token}"))
                await asyncio.wait_for(ws.recv(), 10)
            assert (await gauges(http))["fluxstudio_collab_rooms"] == HELD
            per_room = (rss(pid) - before) / HELD
        await wait_for(unloaded, 20, "the held rooms unloaded")
        baseline = rss(pid)

        started = time.monotonic()
        await churn(ws_url, rooms[WARM_UP:], owner.token)
        took = time.monotonic() - started
        await wait_for(unloaded, 30, "every churned room unloaded")
        after = rss(pid)
    stored = await pool.fetchval(
        "SELECT count(*) FROM collab_snapshots WHERE room = ANY($1::text[])", rooms[WARM_UP:]
    ) + await pool.fetchval(
        "SELECT count(DISTINCT room) FROM collab_updates WHERE room = ANY($1::text[])", rooms[WARM_UP:]
    )
    print(f"\n{ROOMS} rooms in {took:.1f} s ({ROOMS / took:.0f}/s); RSS {baseline / 2**20:.1f} MiB after"
          f" warm-up, {after / 2**20:.1f} MiB after ({(after - baseline) / 2**10:+.0f} KiB,"
          f" {(after - baseline) / ROOMS:+.0f} B a room); a loaded room costs ~{per_room / 1024:.0f} KiB")
    assert stored >= ROOMS  # every room was really written (and so really loaded and unloaded)
    assert after - baseline < MAX_GROWTH, f"RSS grew {(after - baseline) >> 10} KiB over {ROOMS} rooms"
    assert per_room * ROOMS > 2 * MAX_GROWTH  # the threshold would catch rooms that are never freed


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
