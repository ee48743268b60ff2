"""The rooms of one process: pycrdt-websocket's WebsocketServer, loading each room from the store once and
unloading it when idle.

What changes from WebsocketServer, and why:
- `get_room` loads a room once however many sockets ask at the same moment (one future per name). The
  original started the room once per concurrent caller; the second caller's start waited forever on the
  room's start lock, so the second of two first joiners never synced. It never loaded saved state either.
- A room is ready only after it is loaded (stored state, relay subscription, then a catch-up request to
  the other replicas), so no socket ever syncs against a half-loaded document.
- Rooms are not deleted when their last socket leaves (the original did, while another socket could be
  joining): a sweeper unloads rooms idle for `idle_s`, writes what they have (shielded from cancellation)
  and only then forgets them; a socket that arrives meanwhile waits and gets a freshly loaded room.
- At most `rooms_per_process` rooms are loaded (or loading); past that a join fails with `Full`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from pycrdt.websocket import WebsocketServer

from fluxstudio.collab.connection import Connection
from fluxstudio.collab.logs import log
from fluxstudio.collab.relay import Relay
from fluxstudio.collab.room import STORE, Outlets, Room, _carry_on, _library_log
from fluxstudio.collab.store import Store
from fluxstudio.errors import Unavailable

IDLE_S = 30.0


class Full(Exception):
    """This process holds as many rooms as it may."""


class Rooms(WebsocketServer):
    rooms: dict[str, Room]  # type: ignore[assignment]

    def __init__(self, store: Store, *, idle_s: float = IDLE_S, max_rooms: int = 5000,
                 on_change: Callable[[int], None] = lambda rooms: None) -> None:
        super().__init__(rooms_ready=True, auto_clean_rooms=False, exception_handler=_carry_on,
                         log=_library_log)
        self.store = store
        self.relay: Relay | None = None
        self._idle_s, self._max_rooms, self._on_change = idle_s, max_rooms, on_change
        self._loading: dict[str, asyncio.Future[Room]] = {}
        self._unloaded: dict[str, asyncio.Event] = {}
        #: Joiners waiting for a room to load, per name: the sweeper leaves such a room alone.
        self._waiting: dict[str, int] = {}
        self._outlets: Outlets = _Outlets(self)

    # -- joining -----------------------------------------------------------------------------------

    async def get_room(self, name: str) -> Room:  # type: ignore[override]
        """The loaded room, held for the caller (call `release` when done)."""
        while True:
            room = self.rooms.get(name)
            if room is not None and not room.unloading:
                room.holders += 1
                return room
            if room is not None:
                await self._unloaded[name].wait()
                continue
            loading = self._loading.get(name)
            if loading is None:
                if len(self.rooms) + len(self._loading) >= self._max_rooms:
                    raise Full(f"this process holds {self._max_rooms} rooms")
                if self._task_group is None:
                    raise Unavailable("the collaboration server is not running")
                loading = self._loading[name] = asyncio.get_running_loop().create_future()
                self._task_group.start_soon(self._load, name, loading)
            # Counted until the loop above takes the room (no await in between): under load a joiner
            # can wake after `idle_s`, and the room loaded for it must not be unloading by then.
            self._waiting[name] = self._waiting.get(name, 0) + 1
            try:
                await asyncio.shield(loading)
            finally:
                if (left := self._waiting.pop(name) - 1) > 0:
                    self._waiting[name] = left

    def release(self, room: Room) -> None:
        room.holders -= 1
        if room.holders == 0:
            room.idle_since = time.monotonic()

    async def serve(self, websocket: Connection) -> None:  # type: ignore[override]
        room = await self.get_room(websocket.path)
        try:
            await room.serve(websocket)
        finally:
            self.release(room)

    async def _load(self, name: str, loading: asyncio.Future[Room]) -> None:
        assert self.relay is not None
        room = Room(name, self._outlets)
        try:
            await self.relay.join(name)  # first, so nothing published from now on is missed
            stored = await self.store.load(name)
            if stored is not None:
                room.apply(stored, STORE)
            await self.start_room(room)
        except BaseException as exc:
            await self.relay.leave(name)
            loading.set_exception(exc if isinstance(exc, Exception) else Unavailable("shutting down"))
            loading.exception()  # retrieved: a load nobody waits for any more is not an error
            if not isinstance(exc, Exception):
                raise
            log.warning("collab_room_load_failed", room=name, error=str(exc) or type(exc).__name__)
            return
        finally:
            del self._loading[name]
        self.rooms[name] = room
        room.idle_since = time.monotonic()
        self._on_change(len(self.rooms))
        self.relay.ask(name, room.ydoc.get_state())
        loading.set_result(room)

    # -- unloading ---------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._idle_s / 2))
            deadline = time.monotonic() - self._idle_s
            for name, room in list(self.rooms.items()):
                idle = room.holders == 0 and name not in self._waiting
                if idle and not room.unloading and room.idle_since <= deadline:
                    room.unloading = True
                    self._unloaded[name] = asyncio.Event()
                    assert self._task_group is not None
                    self._task_group.start_soon(self._unload, name, room)

    async def _unload(self, name: str, room: Room) -> None:
        try:
            with contextlib.suppress(Unavailable):  # kept pending in the store, retried by its flusher
                await asyncio.shield(self.store.unload(name))
        finally:
            del self.rooms[name]
            self._unloaded.pop(name).set()
            self._on_change(len(self.rooms))
            with contextlib.suppress(Exception):
                assert self.relay is not None
                await self.relay.leave(name)
                await room.stop()

    async def delete_room(self, *, name: str | None = None, room: Room | None = None) -> None:  # type: ignore[override]
        raise NotImplementedError("rooms unload when idle; see Rooms._sweep")

    async def __aenter__(self) -> Rooms:
        await super().__aenter__()
        assert self._task_group is not None
        self._task_group.start_soon(self._sweep)
        return self


class _Outlets:
    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms

    def store(self, room: str, update: bytes) -> None:
        self._rooms.store.store(room, update)

    def relay_update(self, room: str, update: bytes) -> None:
        if self._rooms.relay is not None:
            self._rooms.relay.relay_update(room, update)

    def relay_awareness(self, room: str, update: bytes) -> None:
        if self._rooms.relay is not None:
            self._rooms.relay.relay_awareness(room, update)
