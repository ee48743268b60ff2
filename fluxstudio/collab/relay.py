"""Many replicas, one room: document and awareness updates relayed over Redis pub/sub.

Each replica subscribes to `fluxstudio:collab:{room}` for the rooms it has loaded, and to a channel of
its own for answers. A message is `kind | replica id (16 bytes) | room (length-prefixed) | payload`:
- `U` an update made by one of the sender's sockets (the sender stores it; receivers only pass it on),
- `A` an awareness update,
- `Q` "here is my state vector": each replica that has the room answers `R`, the updates the asker
  lacks, on the asker's own channel only. A replica asks when it loads a room (to catch up with updates
  made since they were stored), every `resync_every_s` (pub/sub drops messages when a connection
  blips) and after reconnecting to Redis.
Redis echoes our own publishes back to us; they are recognised by the replica id and dropped, and what
arrives from the relay is never published again, so there are no loops. Publishing is batched: what
gathers while a round trip is in flight goes out in one pipeline, a room's updates merged into one.
Redis down: nothing is relayed (each replica still serves and stores its own clients), logged once;
the first resync after it is back repairs the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

from pycrdt import Decoder, merge_updates, write_message

from fluxstudio.collab.logs import log
from fluxstudio.collab.room import RELAY, Room
from fluxstudio.queue import REDIS_ERRORS, redis_client

RESYNC_EVERY_S = 5.0
JOIN_TIMEOUT_S = 2.0
_PREFIX = "fluxstudio:collab:"
_UPDATE, _AWARENESS, _QUERY, _REPLY = b"U", b"A", b"Q", b"R"
_NOTHING = b"\x00\x00"
_MAX_BACKOFF_S = 5.0


def room_channel(room: str) -> str:
    return _PREFIX + room


class Relay:
    def __init__(self, redis_url: str, rooms: Mapping[str, Room], *, resync_every_s: float = RESYNC_EVERY_S):
        self.replica = uuid.uuid4().bytes
        self._own = f"{_PREFIX}replica:{self.replica.hex()}"
        self._url, self._rooms, self._resync_every_s = redis_url, rooms, resync_every_s
        self._joined: dict[str, asyncio.Event] = {}
        self._outbox: list[tuple[bytes, str, bytes, str]] = []
        self._wake = asyncio.Event()
        self._pubsub: Any = None
        self._lock = asyncio.Lock()
        self._connected = False
        self._tasks: list[asyncio.Task[None]] = []

    # -- what rooms call ---------------------------------------------------------------------------

    def relay_update(self, room: str, update: bytes) -> None:
        self._post(_UPDATE, room, update)

    def relay_awareness(self, room: str, update: bytes) -> None:
        self._post(_AWARENESS, room, update)

    def ask(self, room: str, state: bytes) -> None:
        self._post(_QUERY, room, state)

    async def join(self, room: str) -> None:
        """Subscribe to the room; returns once Redis confirmed it (or soon, if Redis is away)."""
        joined = self._joined.setdefault(room, asyncio.Event())
        await self._command("subscribe", room_channel(room))
        if self._connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(JOIN_TIMEOUT_S):
                    await joined.wait()

    async def leave(self, room: str) -> None:
        if self._joined.pop(room, None) is not None:
            await self._command("unsubscribe", room_channel(room))

    # -- publishing --------------------------------------------------------------------------------

    def _post(self, kind: bytes, room: str, payload: bytes, channel: str = "") -> None:
        self._outbox.append((kind, room, payload, channel or room_channel(room)))
        self._wake.set()

    def _frame(self, kind: bytes, room: str, payload: bytes) -> bytes:
        return kind + self.replica + write_message(room.encode()) + payload

    def _batch(self) -> list[tuple[str, bytes]]:
        batch, self._outbox = self._outbox, []
        updates: dict[str, list[bytes]] = {}
        rest: list[tuple[str, bytes]] = []
        for kind, room, payload, channel in batch:
            if kind == _UPDATE:
                updates.setdefault(room, []).append(payload)
            else:
                rest.append((channel, self._frame(kind, room, payload)))
        merged = [(room_channel(room), self._frame(_UPDATE, room, merge_updates(*payloads)))
                  for room, payloads in updates.items()]
        return merged + rest

    async def _publish(self) -> None:
        client = redis_client(self._url)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch = self._batch()
                if not self._connected:
                    continue  # the resync after reconnecting repairs what is dropped here
                pipe = client.pipeline(transaction=False)
                for channel, frame in batch:
                    pipe.publish(channel, frame)
                with contextlib.suppress(*REDIS_ERRORS):
                    await pipe.execute()
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await client.aclose(close_connection_pool=True)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self._resync_every_s)
            self._ask_all()

    def _ask_all(self) -> None:
        for name in list(self._joined):
            room = self._rooms.get(name)
            if room is not None:
                self.ask(name, room.ydoc.get_state())

    # -- listening ---------------------------------------------------------------------------------

    async def _command(self, command: str, channel: str) -> None:
        # Sent from the caller's task while the listener reads: redis-py writes and reads a pub/sub
        # connection independently. Without a connection, the listener subscribes all when it connects.
        async with self._lock:
            if self._pubsub is not None:
                with contextlib.suppress(*REDIS_ERRORS):
                    await getattr(self._pubsub, command)(channel)

    async def _listen(self) -> None:
        delay, down_logged = 0.1, False
        while True:
            try:
                await self._listen_once()
            except REDIS_ERRORS as exc:
                if self._connected:
                    delay, down_logged = 0.1, False
                if not down_logged:
                    down_logged = True
                    log.warning("collab_relay_unavailable", error=str(exc) or type(exc).__name__)
            self._connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    async def _listen_once(self) -> None:
        client = redis_client(self._url)
        pubsub = client.pubsub()
        try:
            async with self._lock:
                self._pubsub = pubsub
                for joined in self._joined.values():
                    joined.clear()
                await pubsub.subscribe(self._own, *map(room_channel, self._joined))
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is not None:
                    self._dispatch(message)
        finally:
            self._pubsub = None
            with contextlib.suppress(*REDIS_ERRORS, RuntimeError):
                await pubsub.aclose()
            with contextlib.suppress(*REDIS_ERRORS):
                await client.aclose(close_connection_pool=True)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        if message["type"] == "subscribe":
            if channel == self._own:
                self._connected = True
                log.info("collab_relay_connected")
                self._ask_all()  # catch up on whatever was published while we were away
            elif (joined := self._joined.get(channel[len(_PREFIX):])) is not None:
                joined.set()
        elif message["type"] == "message":
            try:
                self._receive(message["data"])
            except Exception as exc:  # a bad frame must not stop the listener
                log.warning("collab_relay_message_rejected", error=type(exc).__name__)

    def _receive(self, data: bytes) -> None:
        kind, sender = data[:1], data[1:17]
        if sender == self.replica:
            return  # our own publish, echoed
        decoder = Decoder(data[17:])
        name = (decoder.read_message() or b"").decode()
        payload = data[17 + decoder.i0:]
        room = self._rooms.get(name)
        if room is None:
            return
        if kind in (_UPDATE, _REPLY):
            room.apply(payload, RELAY)
        elif kind == _AWARENESS:
            room.apply_awareness(payload)
        elif kind == _QUERY:
            missing = room.ydoc.get_update(payload)
            if missing != _NOTHING:
                self._post(_REPLY, name, missing, f"{_PREFIX}replica:{sender.hex()}")

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Relay:
        for job, name in ((self._listen, "listen"), (self._publish, "publish"), (self._resync, "resync")):
            self._tasks.append(asyncio.create_task(job(), name=f"collab-relay-{name}"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
