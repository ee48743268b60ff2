"""`/collab/{room}?token=TOKEN`: the ASGI app that admits a socket to a room, and the lifespan that runs the
rooms, the store and the relay.

Admission happens after the WebSocket is accepted (a close before accepting is an HTTP 403 to a browser,
with no code it can read) and before any document data is sent: no or bad token, 4401; a room the
token's user may not see, 4403. pycrdt-websocket's ASGIServer answered a rejecting `on_connect` with an
HTTP 500 instead. The query string (the token) is never logged; the room name is. A close reason never
names an exception: it goes to whoever opened the socket.

Admission is not forever: every `recheck_s` the API token behind the socket is looked up again, and a
revoked one closes the socket with 4401 (a failed lookup, PostgreSQL away, keeps it open).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from fluxstudio.collab.connection import (
    FORBIDDEN,
    RESTARTING,
    SERVER_ERROR,
    TRY_LATER,
    UNAUTHORIZED,
    Connection,
    Limits,
    reject,
)
from fluxstudio.collab.logs import log
from fluxstudio.collab.relay import RESYNC_EVERY_S, Relay
from fluxstudio.collab.rooms import IDLE_S, Full, Rooms
from fluxstudio.collab.store import FLUSH_EVERY_S, Store
from fluxstudio.errors import Invalid, NotFound, Unavailable
from fluxstudio.studio import collab

USAGE = "ws(s)://HOST/collab/{room}?token=TOKEN"
RECHECK_S = 30.0


@dataclass(frozen=True)
class CollabOptions:
    limits: Limits = field(default_factory=Limits)
    #: A room with no socket for this long is written out and unloaded.
    idle_s: float = IDLE_S
    flush_every_s: float = FLUSH_EVERY_S
    resync_every_s: float = RESYNC_EVERY_S
    #: How often an open socket's API token is checked again (revoked: closed with 4401).
    recheck_s: float = RECHECK_S


class CollabServer:
    """The mounted app. `running(platform)` is its lifespan; until it runs, sockets are closed with 1012."""

    def __init__(self, options: CollabOptions | None = None) -> None:
        self.options = options or CollabOptions()
        self.rooms: Rooms | None = None
        self._platform: Any = None

    @contextlib.asynccontextmanager
    async def running(self, platform: Any) -> AsyncIterator[CollabServer]:
        """Open the store, the relay and the rooms on the platform's pool and Redis; close in reverse."""
        options, metrics = self.options, platform.metrics
        store = Store(platform.pool, flush_every_s=options.flush_every_s)
        rooms = Rooms(store, idle_s=options.idle_s, max_rooms=options.limits.rooms_per_process,
                      on_change=metrics.collab_rooms.set)
        redis_url = platform.settings.redis_url.get() if platform.settings.redis_url else ""
        rooms.relay = Relay(redis_url, rooms.rooms, resync_every_s=options.resync_every_s)
        async with store, rooms.relay, rooms:
            self.rooms, self._platform = rooms, platform
            log.info("collab_started", replica=rooms.relay.replica.hex()[:12])
            try:
                yield self
            finally:
                self.rooms = None
        metrics.collab_rooms.set(0)
        log.info("collab_stopped")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            response = PlainTextResponse(f"connect with a WebSocket: {USAGE}", 426)
            await response(scope, receive, send)
            return
        room = scope["path"][len(scope.get("root_path", "")):].lstrip("/")
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        rooms = self.rooms
        admitted = await self._admit(token, room) if rooms is not None else (RESTARTING, None, "")
        code, visitor, reason = admitted
        user_id = visitor.user.id if visitor is not None else None
        if code is not None or rooms is None or visitor is None:
            log.info("collab_rejected", room=room[:100], code=code, reason=reason, user_id=user_id)
            await reject(send, code or RESTARTING, reason)
            return
        await self._serve(rooms, Connection(receive, send, room, self.options.limits), visitor)

    async def _admit(self, token: str, room: str) -> tuple[int | None, collab.Visitor | None, str]:
        """(close code or None to let the socket in, the visitor if known, why not)."""
        pool = self._platform.pool
        try:
            visitor = await collab.authenticate(pool, token)
        except NotFound:
            return UNAUTHORIZED, None, "no valid token: pass ?token= (an API token or a room token)"
        except Exception as exc:  # PostgreSQL away: the client should retry, not give up
            log.warning("collab_admission_failed", step="token", error=type(exc).__name__)
            return TRY_LATER, None, "cannot check the token now"
        try:
            await collab.check_room(pool, visitor, room)
        except (NotFound, Invalid):
            return FORBIDDEN, visitor, "this room does not exist or is not yours"
        except Exception as exc:
            log.warning("collab_admission_failed", step="room", error=type(exc).__name__)
            return TRY_LATER, visitor, "cannot check the room now"
        return None, visitor, ""

    async def _recheck(self, conn: Connection, visitor: collab.Visitor) -> None:
        """Close the socket (4401) once the API token that opened it is revoked or its session ends."""
        while conn.open:
            await asyncio.sleep(self.options.recheck_s)
            try:
                valid = await collab.still_valid(self._platform.pool, visitor)
            except Exception as exc:  # PostgreSQL away: not a reason to drop an editor
                log.debug("collab_recheck_failed", error=type(exc).__name__)
                continue
            if not valid:
                log.info("collab_token_revoked", room=conn.path, user_id=visitor.user.id)
                conn.close(UNAUTHORIZED, "the token was revoked, or the console signed out")
                return

    async def _serve(self, rooms: Rooms, conn: Connection, visitor: collab.Visitor) -> None:
        metrics = self._platform.metrics
        user_id = visitor.user.id
        metrics.collab_connections.inc()
        writer = asyncio.create_task(conn.run_writer(), name="collab-writer")
        recheck = asyncio.create_task(self._recheck(conn, visitor), name="collab-recheck")
        started = time.monotonic()
        try:
            await rooms.serve(conn)
        except Full:
            conn.close(TRY_LATER, "too many rooms on this server")
        except Unavailable:
            conn.close(TRY_LATER, "the document cannot be loaded now")
        except Exception:
            log.exception("collab_socket_failed", room=conn.path, user_id=user_id)
            conn.close(SERVER_ERROR, "internal error")
        finally:
            recheck.cancel()
            conn.close(RESTARTING if self.rooms is None else 1000)  # no-op once the client closed
            await writer
            metrics.collab_connections.dec()
            seconds = round(time.monotonic() - started, 3)
            log.info("collab_left", room=conn.path, user_id=user_id, seconds=seconds)
