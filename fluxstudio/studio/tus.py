"""Resumable uploads (tus 1.0.0, API.md §9): the state of each upload and the rules for writing to it.

State is a row of `tus_uploads`; bytes go straight to storage, so any API replica (or the same one after
a restart) carries on at the stored offset:
- S3: one multipart upload under `tus/{id}/data`. S3 wants parts of at least 5 MiB (but the last), while
  a client may send a PATCH of any size (tus-js-client with `chunkSize`, a dropped connection), so each
  PATCH cuts what it receives into parts of `part_size`, holding at most one part in memory, and stores
  what is left over (< one part) as the object `tus/{id}/tail`, which the next PATCH reads back first.
  `offset = sum(parts) + tail_bytes`: every byte counted in the offset is durably stored.
- A local folder: one file written at each part's offset (no minimum part size, no tail).

Writes are serialized per upload by a PostgreSQL advisory lock held for the PATCH (released with the
connection, whatever happens), and every offset update is also fenced on the offset it started from, so
the offset can never move twice for the same bytes. When the last byte lands the upload becomes an asset
through `uploads.accept_upload`, exactly as a streamed upload does (probe, 422 with nothing kept).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg

from fluxstudio.errors import Conflict, EmptyUpload, FluxError, Gone, Invalid, NotFound, TooLarge
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.media import Tools
from fluxstudio.queue import Queue
from fluxstudio.storage import Storage
from fluxstudio.storage.base import PartWriter, StoredPart
from fluxstudio.studio import uploads
from fluxstudio.studio.assets import clean_filename
from fluxstudio.studio.models import Asset, Job
from fluxstudio.studio.projects import get_project
from fluxstudio.studio.users import User

log = get_logger()

EXPIRY_S = 24 * 3600
#: Bytes per stored part: S3's floor is 5 MiB. A local file's offset is recorded this often.
PART_BYTES = 8 * 1024 * 1024
#: Bytes per write to a local file (as a streamed upload writes its temporary file).
WRITE_BYTES = 1024 * 1024
MAX_PARTS = 10_000
#: How long a PATCH or HEAD waits for another request writing the same upload before answering 409.
LOCK_WAIT_S = 10.0
METADATA_MAX = 4096
_COLUMNS = (
    'id, user_id, project_id, filename, content_type, transcode, length, "offset", metadata, multipart_id,'
    " parts, tail_bytes, asset_id, job_id, expires_at"
)


@dataclass
class TusUpload:
    id: str
    user_id: str
    project_id: str
    filename: str
    content_type: str | None
    transcode: bool
    length: int
    offset: int
    metadata: str
    multipart_id: str | None
    parts: list[StoredPart] = field(default_factory=list)
    tail_bytes: int = 0
    asset_id: str | None = None
    job_id: str | None = None
    expires_at: datetime | None = None

    @property
    def stored(self) -> int:
        return sum(part.size for part in self.parts)


@dataclass(frozen=True)
class Written:
    """The upload after a PATCH; `asset` (and `job`) once its last byte has landed."""

    upload: TusUpload
    asset: Asset | None = None
    job: Job | None = None


def data_key(upload_id: str) -> str:
    return f"tus/{upload_id}/data"


def tail_key(upload_id: str) -> str:
    return f"tus/{upload_id}/tail"


def parse_metadata(header: str | None) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64value` pairs (the value may be left out)."""
    if not header:
        return {}
    if len(header) > METADATA_MAX:
        raise Invalid(f"Upload-Metadata must be at most {METADATA_MAX} characters")
    pairs: dict[str, str] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition(" ")
        if not key:
            continue
        try:
            pairs[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Invalid(f"Upload-Metadata value of {key[:40]!r} is not base64 of UTF-8 text") from exc
    return pairs


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


async def create_upload(
    pool: asyncpg.Pool,
    storage: Storage,
    user: User,
    *,
    length: int,
    metadata_header: str | None,
    max_bytes: int,
) -> TusUpload:
    """A new upload of `length` bytes into the project its metadata names (`project_id`, `filename`)."""
    if length > max_bytes:
        raise TooLarge(f"the upload is larger than the limit of {max_bytes} bytes (MAX_UPLOAD_BYTES)")
    if length == 0:
        raise EmptyUpload("the upload is empty")
    meta = parse_metadata(metadata_header)
    project_id = meta.get("project_id", "")
    if not project_id:
        raise Invalid("Upload-Metadata needs project_id")
    await get_project(pool, user, project_id)
    filename = clean_filename(meta.get("filename") or meta.get("name") or "upload")
    content_type = meta.get("filetype") or meta.get("content_type") or None
    upload_id = new_id("tus")
    writer = _writer(storage)
    handle = await writer.begin_parts(data_key(upload_id))
    await pool.execute(
        "INSERT INTO tus_uploads (id, user_id, project_id, filename, content_type, transcode, length,"
        " metadata, multipart_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
        " now() + make_interval(secs => $10))",
        upload_id, user.id, project_id, filename, content_type, _flag(meta.get("transcode")), length,
        metadata_header or "", handle, float(EXPIRY_S),
    )  # fmt: skip
    log.info("tus_upload_created", upload_id=upload_id, project_id=project_id, length=length)
    return await get_upload(pool, user, upload_id)


async def get_upload(db: asyncpg.Pool | asyncpg.Connection, user: User, upload_id: str) -> TusUpload:
    """The user's upload; NotFound for anyone else's, and for one that expired unfinished."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS}, expires_at < now() AS expired FROM tus_uploads WHERE id = $1 AND user_id = $2",
        upload_id[:64],
        user.id,
    )
    if row is None or (row["expired"] and row["asset_id"] is None):
        raise NotFound(f"no upload has the id {upload_id[:64]!r}")
    return _upload(row)


async def head_upload(pool: asyncpg.Pool, user: User, upload_id: str) -> TusUpload:
    """The upload's state for HEAD: after a PATCH still writing it has stored what it received (a client
    resuming after a dropped connection must not be told an offset that is about to move)."""
    try:
        async with _locked(pool, upload_id, wait_s=LOCK_WAIT_S / 2) as connection:
            return await get_upload(connection, user, upload_id)
    except Conflict:
        return await get_upload(pool, user, upload_id)


async def delete_upload(pool: asyncpg.Pool, storage: Storage, user: User, upload_id: str) -> None:
    """Termination: abort the stored parts, delete the bytes and the row."""
    async with _locked(pool, upload_id) as connection:
        upload = await get_upload(connection, user, upload_id)
        if upload.asset_id is not None:
            raise Conflict("the upload is complete: delete its asset instead")
        await _forget(connection, storage, upload)
    log.info("tus_upload_terminated", upload_id=upload_id)


async def write(
    pool: asyncpg.Pool,
    storage: Storage,
    tools: Tools,
    queue: Queue | None,
    user: User,
    upload_id: str,
    offset: int,
    chunks: AsyncIterator[bytes],
    *,
    upload_dir: Path,
    max_attempts: int,
    max_bytes: int,
) -> Written:
    """One PATCH: append the bytes at `offset` (Conflict unless it is the stored offset)."""
    async with _locked(pool, upload_id) as connection:
        upload = await get_upload(connection, user, upload_id)
        if upload.asset_id is not None:
            raise Conflict("the upload is already complete")
        if offset != upload.offset:
            raise Conflict(f"the upload is at offset {upload.offset}, not {offset}")
        sink = _PartSink(connection, storage, upload)
        await sink.take(chunks)
        upload = sink.upload
        if upload.offset < upload.length:
            return Written(upload)
        return await _complete(
            pool, connection, storage, tools, queue, user, upload,
            upload_dir=upload_dir, max_attempts=max_attempts, max_bytes=max_bytes,
        )  # fmt: skip


async def sweep_expired(pool: asyncpg.Pool, storage: Storage, *, batch: int = 100) -> int:
    """Delete uploads past their expiry: unfinished ones with their parts and bytes, finished ones'
    rows (kept until then so that a retried final PATCH or HEAD still learns its Asset-Id)."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM tus_uploads WHERE expires_at < now() ORDER BY expires_at LIMIT $1", batch
    )
    swept = 0
    for row in rows:
        upload = _upload(row)
        try:
            async with _locked(pool, upload.id, wait_s=0.5) as connection:
                await _forget(connection, storage, upload)
        except FluxError as exc:
            log.warning("tus_sweep_failed", upload_id=upload.id, error=str(exc))
            continue
        swept += 1
        log.info("tus_upload_expired", upload_id=upload.id, finished=upload.asset_id is not None)
    return swept


# -- writing -----------------------------------------------------------------------------------------


class _PartSink:
    """Cuts the incoming bytes into stored parts, recording each in the row as it lands."""

    def __init__(self, connection: asyncpg.Connection, storage: Storage, upload: TusUpload) -> None:
        self.connection = connection
        self.writer = _writer(storage)
        self.storage = storage
        self.upload = upload
        # S3: parts of PART_BYTES (one in memory at a time). A local file takes writes of any size, so
        # bytes go to disk a WRITE_BYTES batch at a time, the offset being recorded every PART_BYTES.
        local = self.writer.min_part_bytes == 0
        self.part_size = WRITE_BYTES if local else max(PART_BYTES, -(-upload.length // MAX_PARTS))
        self.record_every = PART_BYTES if local else 0
        self.unrecorded = 0
        self.buffer = bytearray()

    async def take(self, chunks: AsyncIterator[bytes]) -> None:
        upload = self.upload
        if upload.tail_bytes:
            async for chunk in self.storage.open(tail_key(upload.id), end=upload.tail_bytes):
                self.buffer += chunk
        received = upload.offset
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > upload.length:
                    raise Invalid(f"the body goes past Upload-Length ({upload.length} bytes)")
                self.buffer += chunk
                while len(self.buffer) >= self.part_size:
                    await self._store_part(self.part_size)
        finally:
            # Whatever arrived before an error or a dropped connection is kept: the client resumes there.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._store_rest())

    async def _store_rest(self) -> None:
        upload = self.upload
        total = upload.stored + self.unrecorded + len(self.buffer)
        if self.record_every:
            if self.buffer or self.unrecorded:
                await self._store_part(len(self.buffer), last=True)
            return
        if not self.buffer:
            return
        if total == upload.length:
            await self._store_part(len(self.buffer))
            return
        await self.storage.put(tail_key(upload.id), bytes(self.buffer))
        await self._record(upload.parts, len(self.buffer))

    async def _store_part(self, size: int, *, last: bool = False) -> None:
        upload = self.upload
        with memoryview(self.buffer) as view:
            data = bytes(view[:size])
        del self.buffer[:size]
        if self.record_every:  # one local file: one part, however many writes made it
            written = upload.stored + self.unrecorded
            await self.writer.write_part(data_key(upload.id), "", 1, written, data)
            self.unrecorded += len(data)
            if last or self.unrecorded >= self.record_every:
                await self._record([StoredPart(number=1, size=written + len(data), etag="")], 0)
                self.unrecorded = 0
            return
        number = len(upload.parts) + 1
        stored = await self.writer.write_part(data_key(upload.id), upload.multipart_id or "", number,
                                              upload.stored, data)  # fmt: skip
        await self._record([*upload.parts, stored], 0)

    async def _record(self, parts: list[StoredPart], tail_bytes: int) -> None:
        upload = self.upload
        offset = sum(p.size for p in parts) + tail_bytes
        done = await self.connection.fetchval(
            'UPDATE tus_uploads SET "offset" = $3, parts = $4::jsonb, tail_bytes = $5, updated_at = now()'
            ' WHERE id = $1 AND "offset" = $2 RETURNING true',
            upload.id, upload.offset, offset, [p.__dict__ for p in parts], tail_bytes,
        )  # fmt: skip
        if not done:
            raise Conflict("another request moved this upload's offset")
        upload.parts, upload.tail_bytes, upload.offset = parts, tail_bytes, offset


async def _complete(
    pool: asyncpg.Pool,
    connection: asyncpg.Connection,
    storage: Storage,
    tools: Tools,
    queue: Queue | None,
    user: User,
    upload: TusUpload,
    *,
    upload_dir: Path,
    max_attempts: int,
    max_bytes: int,
) -> Written:
    """The last byte has landed: join the parts, make the asset as a streamed upload does, forget the
    upload's bytes. A failure from storage leaves the row complete-but-assetless, so an empty PATCH at
    the final offset retries this; a refusal (unreadable media) deletes the upload: nothing is kept."""
    writer = _writer(storage)
    key = data_key(upload.id)
    await writer.finish_parts(key, upload.multipart_id or "", upload.parts)
    in_place = writer.local_file(key)  # a local folder's file is probed where it is, not copied first
    path = in_place or Path(tempfile.mkstemp(prefix="tus-", suffix=".part", dir=upload_dir)[1])
    try:
        if in_place is None:
            await _download(storage, key, path)
        try:
            asset, job = await uploads.accept_upload(
                pool, storage, tools, queue, user, upload.project_id, path,
                filename=upload.filename, content_type=upload.content_type, size=upload.length,
                transcode=upload.transcode, max_attempts=max_attempts, max_bytes=max_bytes,
            )  # fmt: skip
        except FluxError as exc:
            if isinstance(exc, (Invalid, NotFound, Gone)) or not getattr(exc, "retryable", True):
                await _forget(connection, storage, upload, multipart_done=True)
            raise
    finally:
        if in_place is None:
            await asyncio.to_thread(path.unlink, missing_ok=True)
    await connection.execute(
        "UPDATE tus_uploads SET asset_id = $2, job_id = $3, updated_at = now() WHERE id = $1",
        upload.id, asset.id, job.id if job else None,
    )  # fmt: skip
    upload.asset_id, upload.job_id = asset.id, job.id if job else None
    with contextlib.suppress(FluxError, OSError):
        await storage.delete_prefix(f"tus/{upload.id}/")
    log.info("tus_upload_completed", upload_id=upload.id, asset_id=asset.id, size_bytes=upload.length)
    return Written(upload, asset, job)


async def _download(storage: Storage, key: str, path: Path) -> None:
    with path.open("wb") as out:
        async for chunk in storage.open(key):
            await asyncio.to_thread(out.write, chunk)


async def _forget(
    connection: asyncpg.Connection, storage: Storage, upload: TusUpload, *, multipart_done: bool = False
) -> None:
    if upload.asset_id is None and not multipart_done:
        await _writer(storage).abort_parts(data_key(upload.id), upload.multipart_id or "")
    await storage.delete_prefix(f"tus/{upload.id}/")
    await connection.execute("DELETE FROM tus_uploads WHERE id = $1", upload.id)


# -- helpers ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _locked(
    pool: asyncpg.Pool, upload_id: str, *, wait_s: float = LOCK_WAIT_S
) -> AsyncIterator[asyncpg.Connection]:
    """A connection holding the upload's advisory lock; the pool's reset on release unlocks it."""
    async with pool.acquire() as connection:
        try:
            async with asyncio.timeout(wait_s):
                await connection.execute("SELECT pg_advisory_lock(hashtextextended($1, 7))", upload_id[:64])
        except TimeoutError as exc:
            raise Conflict("another request is writing this upload; retry shortly") from exc
        try:
            yield connection
        finally:
            with contextlib.suppress(Exception):
                await connection.execute("SELECT pg_advisory_unlock(hashtextextended($1, 7))", upload_id[:64])


def _writer(storage: Storage) -> PartWriter:
    if not isinstance(storage, PartWriter):
        raise Invalid("this storage cannot take resumable uploads")
    return storage


def _upload(row: asyncpg.Record) -> TusUpload:
    raw_parts = row["parts"]
    if isinstance(raw_parts, str):
        raw_parts = json.loads(raw_parts)
    return TusUpload(
        id=row["id"], user_id=row["user_id"], project_id=row["project_id"], filename=row["filename"],
        content_type=row["content_type"], transcode=row["transcode"], length=row["length"],
        offset=row["offset"], metadata=row["metadata"], multipart_id=row["multipart_id"],
        parts=[StoredPart(**p) for p in raw_parts], tail_bytes=row["tail_bytes"], asset_id=row["asset_id"],
        job_id=row["job_id"], expires_at=row["expires_at"],
    )  # fmt: skip
