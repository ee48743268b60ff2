"""Documents in PostgreSQL: updates appended (`collab_updates`), folded now and then into a snapshot
(`collab_snapshots`).

Appending never waits for the database: `store()` puts an update in memory and a flusher writes whatever
has gathered, for every room, in one INSERT every `flush_every_s`. What is pending belongs to the store,
not to a room, so a room that unloads or a task that is cancelled loses nothing; `flush()` runs once more,
shielded, when a room unloads and when the process stops. If PostgreSQL is down the updates stay pending
and are retried (logged once per outage). pycrdt's own stores, by contrast, wrote from the room's task
group, so closing a room cancelled its writes.

Compaction merges a room's snapshot and updates into one snapshot and deletes exactly the rows it read,
in one transaction under an advisory lock, so two replicas never fold the same room at once and a row
committed meanwhile (a lower seq can commit later) is kept for the next time. Loading therefore reads the
snapshot and every row left, whatever its seq. Updates are merged with `merge_updates`, which keeps every
struct, including ones whose dependencies have not arrived yet (squashing through a Doc would drop them).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from pycrdt import merge_updates

from fluxstudio.collab.logs import log
from fluxstudio.errors import Unavailable

FLUSH_EVERY_S = 0.5
COMPACT_AFTER_ROWS = 200
FINAL_FLUSH_TIMEOUT_S = 10.0
_LOCK_SPACE = "fluxstudio:collab"


class Store:
    def __init__(self, pool: asyncpg.Pool, *, flush_every_s: float = FLUSH_EVERY_S,
                 compact_after_rows: int = COMPACT_AFTER_ROWS) -> None:
        self._pool = pool
        self._flush_every_s = flush_every_s
        self._compact_after = compact_after_rows
        self._pending: dict[str, list[bytes]] = {}
        self._writing: dict[str, list[bytes]] = {}
        #: Rows this process appended per room since it last compacted the room.
        self._rows: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def store(self, room: str, update: bytes) -> None:
        self._pending.setdefault(room, []).append(update)

    async def load(self, room: str) -> bytes | None:
        """Everything known about `room`, merged into one update (None for a new room)."""
        # Memory first, then the database: a batch that leaves memory in between is committed by then.
        updates = [*self._writing.get(room, ()), *self._pending.get(room, ())]
        try:
            async with self._pool.acquire() as conn:
                snapshot = await conn.fetchval("SELECT state FROM collab_snapshots WHERE room = $1", room)
                rows = await conn.fetch(
                    "SELECT update FROM collab_updates WHERE room = $1 ORDER BY seq", room
                )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise Unavailable(f"cannot load room {room!r}: {type(exc).__name__}") from exc
        stored = ([snapshot] if snapshot is not None else []) + [row["update"] for row in rows]
        everything = stored + updates
        return merge_updates(*everything) if everything else None

    async def flush(self) -> None:
        """Write every pending update now; on failure they stay pending (raises Unavailable)."""
        async with self._lock:
            if not self._pending:
                return
            self._writing, self._pending = self._pending, {}
            rooms = list(self._writing)
            merged = [merge_updates(*updates) for updates in self._writing.values()]
            try:
                await self._pool.execute(
                    "INSERT INTO collab_updates (room, update) SELECT * FROM unnest($1::text[], $2::bytea[])",
                    rooms, merged,
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                for room, updates in self._writing.items():
                    self._pending[room] = updates + self._pending.get(room, [])
                raise Unavailable(f"cannot store collaboration updates: {type(exc).__name__}") from exc
            finally:
                self._writing = {}
        for room in rooms:
            self._rows[room] = self._rows.get(room, 0) + 1

    async def unload(self, room: str) -> None:
        """A room leaves memory: write what it has and fold it if this process added to it."""
        if room in self._pending or room in self._writing:  # else no need to queue behind other flushes
            await self.flush()
        if self._rows.pop(room, 0):
            await self.compact(room)

    async def compact(self, room: str) -> bool:
        """Fold the room's rows into its snapshot; False if another process holds the room's lock."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                locked = await conn.fetchval(
                    "SELECT pg_try_advisory_xact_lock(hashtext($1), hashtext($2))", _LOCK_SPACE, room
                )
                if not locked:
                    return False
                snapshot = await conn.fetchval("SELECT state FROM collab_snapshots WHERE room = $1", room)
                rows = await conn.fetch("SELECT seq, update FROM collab_updates WHERE room = $1", room)
                if not rows:
                    return True
                parts = ([snapshot] if snapshot is not None else []) + [row["update"] for row in rows]
                seqs = [row["seq"] for row in rows]
                await conn.execute(
                    "INSERT INTO collab_snapshots (room, state, upto_seq) VALUES ($1, $2, $3)"
                    " ON CONFLICT (room) DO UPDATE SET state = excluded.state,"
                    " upto_seq = greatest(collab_snapshots.upto_seq, excluded.upto_seq), updated_at = now()",
                    room, merge_updates(*parts), max(seqs),
                )
                await conn.execute("DELETE FROM collab_updates WHERE seq = ANY($1::bigint[])", seqs)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise Unavailable(f"cannot compact room {room!r}: {type(exc).__name__}") from exc
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every_s)
            try:
                await self.flush()
                for room in [room for room, rows in self._rows.items() if rows >= self._compact_after]:
                    self._rows[room] = 0
                    await self.compact(room)
            except Unavailable as exc:
                if not self._failing:
                    self._failing = True
                    log.warning("collab_store_unavailable", error=exc.message, retry="every flush")
                continue
            if self._failing:
                self._failing = False
                log.info("collab_store_recovered")

    async def __aenter__(self) -> Store:
        self._task = asyncio.create_task(self._run(), name="collab-store")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the flusher and write what is left, even if the caller is being cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        final = asyncio.ensure_future(self._final_flush())
        try:
            await asyncio.shield(final)
        except asyncio.CancelledError:
            await final  # cancelled while it ran: let it finish, then go on being cancelled
            raise

    async def _final_flush(self) -> None:
        try:
            async with asyncio.timeout(FINAL_FLUSH_TIMEOUT_S):
                await self.flush()
        except (Unavailable, TimeoutError) as exc:
            lost = sum(len(updates) for updates in self._pending.values())
            log.error("collab_updates_lost", updates=lost, rooms=len(self._pending), error=str(exc))

