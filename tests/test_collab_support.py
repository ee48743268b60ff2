"""Helpers for the collaboration tests (no tests here): an API served in this process with chosen
collab options, pycrdt clients over real WebSockets, and the JavaScript y-websocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from pycrdt import Array, Doc, Provider
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from fluxstudio.app import create_app
from fluxstudio.collab import CollabOptions, collab_surface
from fluxstudio.config import load_settings
from tests.fixtures.js import JS_DIR
from tests.fixtures.platform import wait_for

SYNC_TIMEOUT_S = 10.0


@dataclass
class LocalApi:
    """An API (REST + /collab) served by uvicorn in the test's own event loop."""

    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/collab"

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 30)


async def start_local_api(
    env: dict[str, str], options: CollabOptions, sock: socket.socket | None = None
) -> LocalApi:
    settings = load_settings("api", env)
    app = create_app(settings, surfaces=[lambda s: collab_surface(s, options)])
    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(20):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    return LocalApi(f"http://127.0.0.1:{port}", server, task)


class _Channel:
    """pycrdt's Channel over a `websockets` client connection."""

    def __init__(self, ws: ClientConnection, path: str) -> None:
        self._ws, self.path = ws, path

    def __aiter__(self) -> _Channel:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(message)

    async def recv(self) -> bytes:
        message = await self._ws.recv()
        return message if isinstance(message, bytes) else message.encode()


@contextlib.asynccontextmanager
async def pycrdt_client(ws_url: str, room: str, token: str) -> AsyncIterator[Doc]:
    """A synced pycrdt document in `room`; edits made on it are sent to the server."""
    async with connect(f"{ws_url}/{room}?token={token}", max_size=None) as ws:
        doc: Doc = Doc()
        async with Provider(doc, _Channel(ws, room)) as provider:
            async with asyncio.timeout(SYNC_TIMEOUT_S):
                await provider.synced.wait()
            yield doc


def items(doc: Doc) -> list[Any]:
    return list(doc.get("items", type=Array).to_py() or [])


async def wait_items(doc: Doc, count: int, within_s: float = 10.0) -> list[Any]:
    await wait_for(lambda: len(items(doc)) >= count, within_s, f"{count} items")
    return items(doc)


async def close_code(ws_url: str, room: str, token: str | None) -> tuple[int, list[bytes]]:
    """The code a socket is closed with, and whatever was received before."""
    query = f"?token={token}" if token is not None else ""
    received: list[bytes] = []
    async with connect(f"{ws_url}/{room}{query}") as ws:
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    received.append(await ws.recv())  # type: ignore[arg-type]
    assert ws.close_code is not None
    return ws.close_code, received


async def js_client(ws_url: str, room: str, token: str, **options: Any) -> dict[str, Any]:
    """Run tests/js/collab_client.mjs and return what it printed (request the `js_clients` fixture).

    `subprocess.run` in a thread rather than an asyncio subprocess: a failed assertion would keep the
    asyncio transport alive past its event loop, and its `__del__` then raises wherever it is collected.
    """
    args = json.dumps({"url": ws_url, "room": room, "token": token, **options})
    done = await asyncio.to_thread(
        subprocess.run,
        ["node", str(JS_DIR / "collab_client.mjs"), args],
        capture_output=True, text=True, cwd=JS_DIR, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
