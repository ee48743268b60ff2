"""Storage in a local folder, for development and single-machine installs (`file:///abs/path`).

Writes go to a temporary file in the target's own folder and are renamed into place, so a reader (the
`/media` route, a player) sees the old object or the new one, never half of one. Every path is resolved
and checked against the root, so neither a key nor a symlink planted inside the folder can reach a file
outside it. Blocking file calls run in threads so the event loop keeps serving other requests.

Only the content type derived from the key is kept (`stat` derives it again): a folder has nowhere
portable to store a per-object type.

Objects are private to the user that runs FluxStudio: files are written 0600 (the API and the workers
run as that user). To let a group read them as well (a web server serving the folder), make the storage
folder group-owned and setgid (`chgrp www-data media && chmod 2750 media`): files are then written 0640,
and new folders inherit the group.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, TypeVar

from fluxstudio.errors import Conflict, Invalid, NotFound, Unavailable
from fluxstudio.storage.base import (
    ObjectInfo,
    StoredPart,
    check_folder,
    check_key,
    check_prefix,
    check_range,
    check_source,
    public_url,
)
from fluxstudio.storage.content import headers_for

CHUNK_SIZE = 256 * 1024
#: Temporary files start with this, so `list` and `delete_prefix` can tell them from objects.
TEMP_PREFIX = ".fluxstudio-tmp-"

T = TypeVar("T")


class LocalStorage:
    def __init__(self, root: Path, *, public_base_url: str | None = None) -> None:
        if not root.is_absolute():
            raise Invalid("local storage needs an absolute folder path")
        self.root = root.resolve()
        self.public_base_url = public_base_url
        self._mode = _file_mode(self.root)

    def __repr__(self) -> str:
        return f"LocalStorage(root={str(self.root)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Nothing to release: every call opens and closes its own file."""

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise Invalid("storage key leads outside the storage folder")
        return path

    def _folder(self, prefix: str) -> Path:
        normal = check_prefix(prefix)
        return self._path(normal.rstrip("/")) if normal else self.root

    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        path = self._path(key)
        await _in_thread(_write_atomically, path, lambda out: out.write(data), self._mode)

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        target = self._path(key)
        await check_source(path)

        def copy(out: BinaryIO) -> None:
            with path.open("rb") as source:
                shutil.copyfileobj(source, out, CHUNK_SIZE)

        await _in_thread(_write_atomically, target, copy, self._mode)

    async def open(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        check_range(start, end)
        path = self._path(key)
        file, size = await _in_thread(_open_for_reading, path)
        try:
            if (start > 0 or end is not None) and start >= size and start != end:
                raise Invalid("byte range starts beyond the end of the object")
            stop = size if end is None else min(end, size)
            await asyncio.to_thread(file.seek, start)
            remaining = stop - start
            while remaining > 0:
                chunk = await asyncio.to_thread(file.read, min(CHUNK_SIZE, remaining))
                if not chunk:  # the file shrank under us; a rename never does that, so stop quietly
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(file.close)

    async def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        st = await _in_thread(_stat_file, path)
        headers = headers_for(key)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            content_type=headers.content_type,
            cache_control=headers.cache_control,
            # The same shape nginx uses: changes whenever the file is replaced.
            etag=f'"{st.st_mtime_ns:x}-{st.st_size:x}"',
            modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    async def delete_prefix(self, prefix: str) -> int:
        folder = self._folder(check_folder(prefix))
        return await _in_thread(_delete_folder, folder)

    async def list(self, prefix: str = "") -> list[str]:
        folder = self._folder(prefix)
        return await _in_thread(_list_folder, self.root, folder)

    def url(self, key: str) -> str | None:
        return public_url(self.public_base_url, key)

    # -- written in parts (PartWriter): one file, each part written at its offset ------------------

    min_part_bytes = 0

    async def begin_parts(self, key: str) -> str:
        path = self._path(key)
        await _in_thread(_create_empty, path)
        return "local"

    async def write_part(self, key: str, handle: str, number: int, offset: int, data: bytes) -> StoredPart:
        """Write at `offset`: a part written again after a crash lands on the same bytes."""
        path = self._path(key)
        await _in_thread(_write_at, path, offset, data)
        return StoredPart(number=number, size=len(data), etag="")

    async def finish_parts(self, key: str, handle: str, parts: list[StoredPart]) -> None:
        # Bytes past the last part (a write whose offset was never recorded) are cut off.
        await _in_thread(os.truncate, self._path(key), sum(part.size for part in parts))

    async def abort_parts(self, key: str, handle: str) -> None:
        await _in_thread(self._path(key).unlink, True)

    def local_file(self, key: str) -> Path | None:
        """Where the object lives on disk, so a reader such as ffmpeg need not copy it (tus, thumbnails)."""
        return self._path(key)


def _create_empty(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)


def _write_at(path: Path, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
    finally:
        os.close(fd)


async def _in_thread(func: Callable[..., T], *args: object) -> T:
    """Run a blocking file call in a thread; an OS failure other than a missing file is Unavailable."""
    try:
        return await asyncio.to_thread(func, *args)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFound("no such object in storage") from exc
    except IsADirectoryError as exc:
        raise NotFound("no such object in storage (the key names a folder)") from exc
    except OSError as exc:
        raise Unavailable(f"local storage failed: {exc.strerror or type(exc).__name__}") from exc


def _file_mode(root: Path) -> int:
    """0600, or 0640 when the storage folder is setgid (shared with its group on purpose)."""
    try:
        shared = bool(root.stat().st_mode & stat.S_ISGID)
    except OSError:  # made on first write; private until someone shares it
        shared = False
    return 0o640 if shared else 0o600


def _write_atomically(path: Path, write: Callable[[BinaryIO], object], mode: int = 0o600) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        # S3 can hold both `a/b` and `a/b/c`; a folder cannot, so say so instead of failing obscurely.
        raise Conflict("storage key runs through an existing object") from exc
    # No fsync: the rename is what makes the write all-or-nothing for readers, which is the point here.
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.chmod(temp, mode)  # mkstemp makes 0600 already; 0640 when the folder is shared with a group
        try:
            os.replace(temp, path)
        except IsADirectoryError as exc:
            raise Conflict("storage key names a folder of other objects") from exc
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _open_for_reading(path: Path) -> tuple[BinaryIO, int]:
    file = path.open("rb")
    size = os.fstat(file.fileno()).st_size
    return file, size


def _stat_file(path: Path) -> os.stat_result:
    st = path.stat()
    if not path.is_file():
        raise IsADirectoryError(str(path))
    return st


def _objects(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [
        Path(dirpath, name)
        for dirpath, _, names in os.walk(folder)
        for name in names
        if not name.startswith(TEMP_PREFIX)
    ]


def _list_folder(root: Path, folder: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in _objects(folder))


def _delete_folder(folder: Path) -> int:
    count = len(_objects(folder))
    if folder.is_dir():
        shutil.rmtree(folder)
    return count
