"""One collaborator's WebSocket as a room sees it: a pycrdt `Channel` whose sends never block and never raise.

pycrdt-websocket's YRoom sends from the room's task group, so a client that disconnects mid-broadcast
raises there and cancels the room's tasks (pending store writes included), and one slow reader holds up
the rest. Here each connection has an outbox drained by its own writer task: a send to a closed socket is
dropped, and a reader whose outbox passes `Limits.outbox_bytes` is closed (1013) rather than let grow.
When several document updates wait in an outbox they go out merged as one, so a reader that falls behind
catches up in fewer, larger frames.

Inbound, a message over `max_message_bytes` closes the socket (1009), text frames included (the protocol
is binary, so a text frame is dropped, but only once it has been measured); past `messages_per_s` (a token
bucket of `burst`) the socket is read more slowly, so TCP pushes back on the client and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from pycrdt import YMessageType, YSyncMessageType, create_update_message, merge_updates, read_message
from starlette.types import Receive, Send

#: Close codes: ours (4401, 4403) and RFC 6455's.
UNAUTHORIZED, FORBIDDEN = 4401, 4403
TOO_BIG, BAD_DATA, SERVER_ERROR, RESTARTING, TRY_LATER = 1009, 1007, 1011, 1012, 1013

_UPDATE = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_UPDATE])


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 8 << 20
    messages_per_s: float = 1000.0
    burst: int = 2000
    outbox_bytes: int = 32 << 20
    rooms_per_process: int = 5000


class Closed(Exception):
    """The socket is gone (or being closed); stop reading from it."""


class Connection:
    """Implements pycrdt's `Channel` (`path`, `send`, `recv`, async iteration) over ASGI."""

    def __init__(self, receive: Receive, send: Send, room: str, limits: Limits) -> None:
        self._receive, self._send, self._path, self._limits = receive, send, room, limits
        self._outbox: deque[bytes] = deque()
        self._queued = 0
        self._wake = asyncio.Event()
        self._close_code: int | None = None
        self._tokens, self._stamp = float(limits.burst), time.monotonic()
        self.open = True
        #: Awareness client ids this socket has announced, removed from the room when it leaves.
        self.awareness_ids: set[int] = set()

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except Closed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        self.send_nowait(message)

    def send_nowait(self, message: bytes) -> None:
        if not self.open:
            return
        self._outbox.append(message)
        self._queued += len(message)
        if self._queued > self._limits.outbox_bytes:
            self.close(TRY_LATER, "too far behind")
        self._wake.set()

    async def recv(self) -> bytes:
        while self.open and self._close_code is None:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self.open = False
                self._wake.set()
                break
            if self._close_code is not None:
                break  # closing (a revoked token, too far behind): nothing more goes in
            data: bytes | None = message.get("bytes")
            text: str | None = message.get("text")
            if _size(data, text) > self._limits.max_message_bytes:
                self.close(TOO_BIG, "message too big")
                break
            if data is None:
                continue  # the protocol is binary; a text frame is noise
            await self._throttle()
            return data
        raise Closed

    def close(self, code: int, reason: str = "") -> None:
        """Close after nothing more: what waits in the outbox is dropped."""
        if self._close_code is None:
            self._close_code, self._reason = code, reason
            self._outbox.clear()
            self._queued = 0
            self._wake.set()

    async def run_writer(self) -> None:
        """Drain the outbox until the socket closes; then send the close frame if we are the closer."""
        try:
            while self._close_code is None and self.open:
                if not self._outbox:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._send({"type": "websocket.send", "bytes": self._take()})
        except Exception:  # the peer went away mid-send: nothing to tell anyone
            self.open = False
        finally:
            await self._send_close()

    async def _send_close(self) -> None:
        if self.open and self._close_code is not None:
            await reject(self._send, self._close_code, self._reason)
        self.open = False

    def _take(self) -> bytes:
        message = self._outbox.popleft()
        self._queued -= len(message)
        if not (message.startswith(_UPDATE) and self._outbox and self._outbox[0].startswith(_UPDATE)):
            return message
        updates = [read_message(message[2:])]
        while self._outbox and self._outbox[0].startswith(_UPDATE):
            following = self._outbox.popleft()
            self._queued -= len(following)
            updates.append(read_message(following[2:]))
        return create_update_message(merge_updates(*updates))

    async def _throttle(self) -> None:
        limits = self._limits
        now = time.monotonic()
        self._tokens = min(limits.burst, self._tokens + (now - self._stamp) * limits.messages_per_s)
        self._stamp = now
        if self._tokens < 1:
            await asyncio.sleep((1 - self._tokens) / limits.messages_per_s)
            self._tokens, self._stamp = 1.0, time.monotonic()
        self._tokens -= 1


def _size(data: bytes | None, text: str | None) -> int:
    if data is not None:
        return len(data)
    return len(text.encode("utf-8", "surrogatepass")) if text else 0


async def reject(send: Send, code: int, reason: str) -> None:
    """Close an accepted socket before anything else is sent on it."""
    message: dict[str, Any] = {"type": "websocket.close", "code": code, "reason": reason}
    with contextlib.suppress(Exception):
        await send(message)
