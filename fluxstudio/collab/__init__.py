"""Collaboration: Yjs rooms at `/collab/{room}` (API.md section 5), served by pycrdt-websocket in the API
process, stored in PostgreSQL and shared between replicas through Redis.

    server.py      the ASGI app (admission: 4401 / 4403) and its lifespan
    connection.py  one socket: outbox, limits, close codes (a pycrdt Channel)
    room.py        one document: the y-websocket protocol, awareness (a YRoom)
    rooms.py       the rooms of a process: load once, unload when idle (a WebsocketServer)
    store.py       PostgreSQL: batched appends, final flush, compaction
    relay.py       Redis pub/sub between replicas: updates, awareness, catch-up, resync

`collab_surface(settings)` is what `create_app` needs: the route and the lifespan (Starlette does not
run a mounted app's lifespan, so the app factory enters it after the platform is open).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.routing import BaseRoute, Mount

from fluxstudio.collab.connection import Limits
from fluxstudio.collab.server import CollabOptions, CollabServer
from fluxstudio.config import Settings

__all__ = ["CollabOptions", "CollabServer", "Limits", "collab_surface"]


def collab_surface(
    settings: Settings, options: CollabOptions | None = None
) -> tuple[list[BaseRoute], list[Callable[[Any], AbstractAsyncContextManager[object]]]]:
    """The `/collab` mount and its lifespan, for `create_app` (see `fluxstudio.app.SURFACES`)."""
    server = CollabServer(options)
    return [Mount("/collab", app=server)], [server.running]
