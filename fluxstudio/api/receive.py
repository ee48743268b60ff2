"""Receiving an upload's bytes: streamed from the socket into a temporary file, never held whole in memory.

Two shapes: `multipart/form-data` with a field `file` (browsers, `curl -F`), parsed by python-multipart's
streaming parser so the file part goes straight to disk; and a raw body (`curl -T`, `--data-binary`).
Memory stays at one network chunk plus one write batch whatever the upload's size.

The limit is enforced twice: a `Content-Length` that announces more than `MAX_UPLOAD_BYTES` is refused
before a byte is read, and a body that turns out larger (chunked, or lying) is refused the moment it
passes the limit: reading stops, the temporary file is deleted, 413. (uvicorn then discards the rest of
the body, so the client still reads the 413 rather than a reset connection.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from fluxstudio.api.problems import MalformedRequest
from fluxstudio.errors import Invalid, TooLarge
from fluxstudio.runtime.metrics import ApiMetrics
from fluxstudio.runtime.platform import UPLOAD_PREFIX, UPLOAD_SUFFIX

#: Bytes gathered before one write to disk: big enough that thread hops are rare, small enough to ignore.
WRITE_BATCH = 1024 * 1024
#: Room for boundaries, part headers and small fields around the file in a multipart body.
MULTIPART_OVERHEAD = 1024 * 1024
FILE_FIELD = "file"



@dataclass(frozen=True)
class Received:
    path: Path
    size: int
    filename: str | None
    content_type: str | None


class _Sink:
    """The temporary file, written in batches from a thread; TooLarge the moment `limit` is passed."""

    def __init__(self, out: BinaryIO, limit: int, metrics: ApiMetrics) -> None:
        self.out = out
        self.limit = limit
        self.metrics = metrics
        self.size = 0
        self.batch = bytearray()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(f"the upload is larger than the limit of {self.limit} bytes (MAX_UPLOAD_BYTES)")
        self.batch += data
        if len(self.batch) >= WRITE_BATCH:
            await self.flush()

    async def flush(self) -> None:
        if self.batch:
            batch, self.batch = bytes(self.batch), bytearray()
            await asyncio.to_thread(self.out.write, batch)
            self.metrics.upload_bytes.inc(len(batch))


@contextlib.asynccontextmanager
async def receive_upload(
    request: Request, folder: Path, limit: int, metrics: ApiMetrics, *, multipart_allowed: bool = True
) -> AsyncIterator[Received]:
    """The upload in a temporary file under `folder`, deleted when the block ends, whatever happens."""
    refuse_announced_oversize(request, limit)
    fd, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=UPLOAD_SUFFIX, dir=folder)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = _Sink(out, limit, metrics)
            if multipart_allowed and _is_multipart(request):
                filename, content_type = await _multipart(request, sink)
            else:
                await _raw(request, sink)
                filename = request.query_params.get("filename")
                content_type = request.headers.get("content-type")
            await sink.flush()
        yield Received(path=path, size=sink.size, filename=filename, content_type=content_type)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def refuse_announced_oversize(request: Request, limit: int) -> None:
    """TooLarge when `Content-Length` already says the body is over the limit: refused before reading
    (and, for a capability URL, before it is spent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        overhead = MULTIPART_OVERHEAD if _is_multipart(request) else 0
        if int(declared) > limit + overhead:
            raise TooLarge(f"the upload is larger than the limit of {limit} bytes (MAX_UPLOAD_BYTES)")


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


async def _raw(request: Request, sink: _Sink) -> None:
    async for chunk in request.stream():
        if chunk:
            await sink.write(chunk)


async def _multipart(request: Request, sink: _Sink) -> tuple[str | None, str | None]:
    _, params = parse_options_header(request.headers["content-type"])
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedRequest("multipart/form-data without a boundary")
    form = _Form()
    try:
        parser = MultipartParser(boundary, form.callbacks())
    except (MultipartParseError, ValueError) as exc:
        raise MalformedRequest("the multipart boundary is not valid") from exc
    body_limit = sink.limit + MULTIPART_OVERHEAD
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > body_limit:
            raise TooLarge(f"the upload is larger than the limit of {sink.limit} bytes (MAX_UPLOAD_BYTES)")
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise MalformedRequest("the multipart body is malformed") from exc
        for data in form.take():
            await sink.write(data)
    if not form.ended:
        raise MalformedRequest("the multipart body ended before its closing boundary (truncated?)")
    if not form.found_file:
        raise Invalid(f"a multipart upload needs a field named `{FILE_FIELD}`")
    return form.filename, form.content_type


class _Form:
    """The parser's callbacks (synchronous): the `file` part's data is queued for the async sink."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self._field = bytearray()
        self._value = bytearray()
        self.in_file = False
        self.found_file = False
        self.ended = False
        self.filename: str | None = None
        self.content_type: str | None = None
        self._pending: list[bytes] = []

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def take(self) -> list[bytes]:
        pending, self._pending = self._pending, []
        return pending

    def _part_begin(self) -> None:
        self.headers = {}

    def _header_end(self) -> None:
        self.headers[self._field.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        # The first `file` part is the upload; other fields and later files are read past, not kept.
        self.in_file = name == FILE_FIELD and not self.found_file
        if self.in_file:
            self.found_file = True
            raw_name = options.get(b"filename")
            self.filename = raw_name.decode("utf-8", "replace") if raw_name is not None else None
            self.content_type = self.headers.get("content-type")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self._pending.append(data[start:end])

    def _part_end(self) -> None:
        self.in_file = False

    def _end(self) -> None:
        self.ended = True
