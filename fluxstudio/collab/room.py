"""One shared document and its awareness: pycrdt-websocket's YRoom with the y-websocket protocol served
inline, so that nothing a client does can cancel the room's tasks.

What changes from YRoom, and why:
- `serve` handles each message where it arrives: a sync step 1 is answered, an update is applied, and the
  document observer (installed in `__init__`, so no update is ever applied unobserved) hands the change
  to every other socket's outbox, to the store and to the relay at once, with no task per send and no
  memory stream in between. YRoom's `_broadcast_updates` started a task per client and per store write
  in the room's task group, where a failing send cancelled them all and `stop()` cancelled the writes.
- Where an update came from decides what happens to it: from one of our sockets it is stored and relayed;
  from the relay (another replica's client) it is only passed on to our sockets, since that replica
  stores it; from the store (loading) it goes nowhere.
- Awareness: a new socket gets everyone's state at once (as y-websocket's own server does); a socket that
  leaves takes its states with it; states are relayed like updates. The server itself has no state.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Protocol

from pycrdt import (
    Decoder,
    TransactionEvent,
    YMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    handle_sync_message,
    read_message,
)
from pycrdt.websocket import YRoom

from fluxstudio.collab.connection import BAD_DATA, Connection
from fluxstudio.collab.logs import log

_library_log = logging.getLogger("pycrdt.websocket")

#: Origins of a change other than one of our sockets.
RELAY, STORE = "relay", "store"


class Outlets(Protocol):
    """Where a change made by one of our sockets goes besides our other sockets."""

    def store(self, room: str, update: bytes) -> None: ...
    def relay_update(self, room: str, update: bytes) -> None: ...
    def relay_awareness(self, room: str, update: bytes) -> None: ...


def _carry_on(exception: Exception, _: logging.Logger) -> bool:
    log.error("room_task_failed", exc_info=exception)
    return True  # handled: YRoom restarts its tasks rather than taking the server down


class Room(YRoom):
    clients: set[Connection]  # type: ignore[assignment]

    def __init__(self, name: str, outlets: Outlets) -> None:
        super().__init__(ready=True, exception_handler=_carry_on, log=_library_log)
        self.name = name
        self._outlets = outlets
        self._origin: Connection | str = STORE
        self._subscription = self.ydoc.observe(self._changed)
        self.awareness.set_local_state(None)
        #: Sockets and joiners holding the room; it may unload only when there are none.
        self.holders = 0
        self.idle_since = 0.0
        self.unloading = False

    async def _watch_ready(self) -> None:
        self.ydoc_observed.set()  # observed since __init__

    async def _broadcast_updates(self) -> None:
        return  # done synchronously by `_changed`

    @contextlib.contextmanager
    def origin(self, origin: Connection | str) -> Iterator[None]:
        """Changes applied inside come from `origin` (the observer runs within apply_update)."""
        previous, self._origin = self._origin, origin
        try:
            yield
        finally:
            self._origin = previous

    def apply(self, update: bytes, origin: str) -> None:
        with self.origin(origin):
            self.ydoc.apply_update(update)

    def _changed(self, event: TransactionEvent) -> None:
        update, origin = event.update, self._origin
        message = create_update_message(update)
        for client in self.clients:
            if client is not origin:
                client.send_nowait(message)
        if isinstance(origin, Connection):
            self._outlets.store(self.name, update)
            self._outlets.relay_update(self.name, update)

    async def serve(self, channel: Connection) -> None:  # type: ignore[override]
        """Speak the y-websocket protocol with one socket until it closes."""
        self.clients.add(channel)
        try:
            channel.send_nowait(create_sync_message(self.ydoc))
            if self.awareness.states:
                everyone = self.awareness.encode_awareness_update(list(self.awareness.states))
                channel.send_nowait(create_awareness_message(everyone))
            async for message in channel:
                try:
                    self._receive(channel, message)
                except Exception as exc:  # a malformed message: this socket goes, the room stays
                    log.warning("collab_message_rejected", room=self.name, error=type(exc).__name__)
                    channel.close(BAD_DATA, "malformed message")
        finally:
            self.clients.discard(channel)
            self._forget(channel)

    def _receive(self, channel: Connection, message: bytes) -> None:
        if message[0] == YMessageType.SYNC:
            with self.origin(channel):
                reply = handle_sync_message(message[1:], self.ydoc)
            if reply is not None:
                channel.send_nowait(reply)
        elif message[0] == YMessageType.AWARENESS:
            update = read_message(message[1:])
            _track(channel, update)
            self.awareness.apply_awareness_update(update, channel)
            # The sender too: y-websocket counts its own echo as a sign of life.
            for client in self.clients:
                client.send_nowait(message)
            self._outlets.relay_awareness(self.name, update)

    def apply_awareness(self, update: bytes) -> None:
        """A state from another replica's client, for our sockets."""
        self.awareness.apply_awareness_update(update, RELAY)
        message = create_awareness_message(update)
        for client in self.clients:
            client.send_nowait(message)

    def _forget(self, channel: Connection) -> None:
        gone = [client_id for client_id in channel.awareness_ids if client_id in self.awareness.states]
        if gone:
            self.awareness.remove_awareness_states(gone, "disconnect")
            update = self.awareness.encode_awareness_update(gone)
            for client in self.clients:
                client.send_nowait(create_awareness_message(update))
            self._outlets.relay_awareness(self.name, update)

    def send_server_awareness(self, type: str, changes: tuple[dict[str, Any], Any]) -> None:
        """States that timed out (their client vanished without a word) are removed for everyone."""
        changed, origin = changes
        if type == "update" and origin == "timeout" and changed["removed"]:
            message = create_awareness_message(self.awareness.encode_awareness_update(changed["removed"]))
            for client in self.clients:
                client.send_nowait(message)


def _track(channel: Connection, update: bytes) -> None:
    """Note which awareness client ids this socket speaks for (a null state means one left)."""
    decoder = Decoder(update)
    for _ in range(decoder.read_var_uint()):
        client_id = decoder.read_var_uint()
        decoder.read_var_uint()  # clock
        if decoder.read_var_string() == "null":
            channel.awareness_ids.discard(client_id)
        else:
            channel.awareness_ids.add(client_id)
