"""The storage interface every implementation keeps, and the key rules they share.

Keys are relative, `/`-separated names such as `assets/a1b2/hls/j3/720p/seg_00001.m4s`. They are checked
here, before any implementation sees them, so the local folder and S3 accept exactly the same keys and a
key can never name something outside the storage root.

Prefixes name folders: `assets/a1b2` and `assets/a1b2/` both mean "everything under `assets/a1b2/`", so
deleting job `j1`'s outputs can never touch job `j10`'s.

Errors: a missing object is `NotFound`, a bad key or range is `Invalid`, a storage that cannot be
reached or refuses us is `Unavailable`. Nothing else escapes an implementation.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable
from urllib.parse import quote

from fluxstudio.errors import Invalid

#: S3's own limit on key length, applied to local storage too so a key that works locally works on S3.
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    cache_control: str
    etag: str
    modified: datetime


@runtime_checkable
class Storage(Protocol):
    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        """Store `data` under `key`, replacing any object there; readers never see a partial object."""

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        """Store the file at `path` under `key`, streamed: a large file is never read whole into memory."""

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the bytes `[start, end)` of the object (end exclusive, clamped to its size).

        Errors (NotFound, Invalid for a range that starts past the end) surface at the first chunk.
        """

    async def stat(self, key: str) -> ObjectInfo:
        """Size, content type, cache policy, etag and modification time of the object."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder `prefix`; return how many were deleted."""

    async def list(self, prefix: str = "") -> list[str]:
        """Every key under the folder `prefix` (`""` for all), sorted."""

    def url(self, key: str) -> str | None:
        """The public URL of `key` when a public base URL is configured, else None."""

    async def aclose(self) -> None:
        """Release connections; the storage cannot be used afterwards."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@dataclass(frozen=True)
class StoredPart:
    """One part of an object written in parts: its number (from 1), size and the store's tag for it."""

    number: int
    size: int
    etag: str


@runtime_checkable
class PartWriter(Protocol):
    """An object written in parts over many requests, by any process (tus uploads).

    S3 keeps the parts of a multipart upload until it is completed or aborted; every part but the last
    must hold at least `min_part_bytes`. A local folder writes each part at its offset in one file (no
    minimum). `begin_parts` returns a handle that the caller stores and passes back.
    """

    min_part_bytes: int

    async def begin_parts(self, key: str) -> str: ...

    async def write_part(
        self, key: str, handle: str, number: int, offset: int, data: bytes
    ) -> StoredPart: ...

    async def finish_parts(self, key: str, handle: str, parts: list[StoredPart]) -> None: ...

    async def abort_parts(self, key: str, handle: str) -> None: ...

    def local_file(self, key: str) -> Path | None:
        """The object's own file when the storage is a local folder (read it in place), else None."""


def check_key(key: str) -> str:
    """Return `key` if it is a safe relative object key, else raise Invalid (without echoing the key)."""
    if not isinstance(key, str) or not key:
        raise Invalid("storage key is empty")
    if "\x00" in key or "\\" in key:
        raise Invalid("storage key contains a NUL byte or a backslash")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise Invalid("storage key contains a control character")
    if key.startswith("/"):
        raise Invalid("storage key must be relative, not start with '/'")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise Invalid(f"storage key is longer than {MAX_KEY_BYTES} bytes")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise Invalid("storage key has an empty, '.' or '..' segment")
    return key


def check_prefix(prefix: str) -> str:
    """Normalise a folder prefix to `""` or `a/b/`; raise Invalid if it is not a safe relative path."""
    stripped = prefix.rstrip("/") if isinstance(prefix, str) else prefix
    if stripped == "":
        return ""
    return check_key(stripped) + "/"


def check_folder(prefix: str) -> str:
    """`check_prefix` for `delete_prefix`: the whole storage (`""`) is never a folder to delete."""
    folder = check_prefix(prefix)
    if not folder:
        raise Invalid("refusing to delete the whole storage: give a folder prefix")
    return folder


def check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise Invalid("byte range must have 0 <= start <= end")


def public_url(base: str | None, key: str) -> str | None:
    """`base` joined with the percent-encoded key; `base` points at the storage root."""
    if base is None:
        return None
    return base.rstrip("/") + "/" + quote(check_key(key), safe="/")


async def check_source(path: Path) -> int:
    """The size of the file `put_file` is about to store; Invalid if there is no such file."""
    try:
        st = await asyncio.to_thread(path.stat)
    except OSError as exc:
        raise Invalid("the file to store does not exist or cannot be read") from exc
    if not stat.S_ISREG(st.st_mode):
        raise Invalid("the path to store is not a regular file")
    return st.st_size
