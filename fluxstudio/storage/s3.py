"""Storage in an S3 bucket (AWS, DigitalOcean Spaces, MinIO, ...) through aiobotocore: `s3://bucket/prefix`.

One client for the storage object's life, opened on first use (or by `async with`), closed by `aclose`.
Retries are botocore's own (standard mode, bounded); this module never retries by itself.

botocore and aiohttp exceptions are translated here and nowhere else: a missing object is `NotFound`, an
unsatisfiable range `Invalid`, everything else `Unavailable` with a message that names the endpoint host
and the bucket. Messages are built from error codes and class names only, never from botocore's text,
so no secret, key or signed URL can reach a log line through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from aiohttp.abc import AbstractResolver
from botocore.exceptions import BotoCoreError, ClientError

from fluxstudio.config import S3Settings
from fluxstudio.errors import Invalid, NotFound, Unavailable
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

MiB = 1024 * 1024
#: S3's floor for every part but the last, and its ceiling on the number of parts.
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
CHUNK_SIZE = 256 * 1024

#: Hosts known to serve virtual-hosted buckets. Any other custom endpoint (MinIO, Ceph, a container
#: name without dots) is addressed path-style under `auto`, because `bucket.minio:9000` rarely resolves.
VIRTUAL_HOSTS = ("amazonaws.com", "digitaloceanspaces.com")

_MISSING = {"NoSuchKey", "NotFound", "404"}


def addressing_style(settings: S3Settings) -> str:
    """The botocore addressing style for these settings, deciding `auto` for custom endpoints.

    botocore's own `auto` goes path-style for any custom endpoint, Spaces included, while Spaces and AWS
    want virtual-hosted buckets. A bucket with dots cannot be virtual-hosted over TLS (the certificate
    covers one label), so it stays path-style.
    """
    if settings.addressing_style != "auto" or not settings.endpoint_url:
        return settings.addressing_style
    host = urlsplit(settings.endpoint_url).hostname or ""
    known = host.endswith(VIRTUAL_HOSTS)
    return "virtual" if known and "." not in settings.bucket else "path"


class S3Storage:
    """`resolver` replaces aiohttp's DNS resolver (split-horizon DNS; tests use it for `*.localhost`)."""

    #: Keys per list_objects_v2 page, and so per delete_objects batch (S3 allows at most 1000 of each).
    list_page_size = 1000

    def __init__(
        self,
        settings: S3Settings,
        *,
        public_base_url: str | None = None,
        multipart_threshold: int = 16 * MiB,
        part_size: int = 8 * MiB,
        part_concurrency: int = 4,
        max_attempts: int = 3,
        resolver: AbstractResolver | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE or multipart_threshold < part_size or part_concurrency < 1:
            raise Invalid("S3 parts must be at least 5 MiB and the multipart threshold at least one part")
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = check_prefix(settings.prefix)
        self.public_base_url = public_base_url
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.part_concurrency = part_concurrency
        self._max_attempts = max_attempts
        self._resolver = resolver
        self._host = _endpoint_host(settings.endpoint_url)
        self._stack = contextlib.AsyncExitStack()
        self._client_lock = asyncio.Lock()
        self._s3: Any = None
        self._closed = False

    def __repr__(self) -> str:
        return f"S3Storage(endpoint={self._host!r}, bucket={self.bucket!r}, prefix={self.prefix!r})"

    async def __aenter__(self) -> Self:
        await self._client()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        self._s3 = None
        await self._stack.aclose()

    async def _client(self) -> Any:
        async with self._client_lock:
            if self._closed:
                raise Unavailable("S3 storage is already closed")
            if self._s3 is None:
                with self._errors("open a client"):
                    self._s3 = await self._stack.enter_async_context(self._create_client())
            return self._s3

    def _create_client(self) -> Any:
        s = self.settings
        config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": self._max_attempts},  # the first try included
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": addressing_style(s)},
            # SigV4 everywhere, presigned URLs included (botocore would presign with V2 for a custom
            # endpoint, which stores such as Spaces reject, and whose expiry is not X-Amz-Expires).
            signature_version="s3v4",
            # Default CRC checksums (botocore >= 1.36) are refused by some S3-compatible stores.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connector_args={"resolver": self._resolver} if self._resolver else None,
        )
        return _session().create_client(
            "s3",
            region_name=s.region or "us-east-1",
            endpoint_url=s.endpoint_url,
            aws_access_key_id=s.access_key.get() if s.access_key else None,
            aws_secret_access_key=s.secret_key.get() if s.secret_key else None,
            config=config,
        )

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Translate botocore and aiohttp failures of `action` into our error tree, once."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = str(error.get("Code") or status or "unknown")
            if code in _MISSING:
                raise NotFound("no such object in storage") from exc
            if code == "InvalidRange" or status == 416:
                raise Invalid("byte range starts beyond the end of the object") from exc
            raise Unavailable(self._failure(action, f"error {code}")) from exc
        except (BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unavailable(self._failure(action, type(exc).__name__)) from exc

    def _failure(self, action: str, reason: str) -> str:
        return f"S3 storage at {self._host} (bucket {self.bucket}) could not {action}: {reason}"

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        headers = headers_for(key)
        full = self._full(key)
        s3 = await self._client()
        with self._errors("store an object"):
            await s3.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=data,
                ContentType=content_type or headers.content_type,
                CacheControl=headers.cache_control,
            )

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> None:
        full = self._full(key)
        size = await check_source(path)
        if size < self.multipart_threshold:
            await self.put(key, await asyncio.to_thread(path.read_bytes), content_type=content_type)
            return
        headers = headers_for(key)
        s3 = await self._client()
        with self._errors("store an object in parts"):
            created = await s3.create_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                ContentType=content_type or headers.content_type,
                CacheControl=headers.cache_control,
            )
        upload_id = created["UploadId"]
        try:
            with self._errors("store an object in parts"):
                parts = await self._upload_parts(s3, full, upload_id, path, size)
                await s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            # An unfinished upload keeps its parts, and its bill, until it is aborted.
            with contextlib.suppress(Exception):
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            raise

    async def _upload_parts(
        self, s3: Any, full: str, upload_id: str, path: Path, size: int
    ) -> list[dict[str, Any]]:
        """Upload the file in parts, a few at a time, holding at most `part_concurrency` parts in memory."""
        part_size = max(self.part_size, math.ceil(size / MAX_PARTS))
        count = math.ceil(size / part_size)
        file: BinaryIO = await asyncio.to_thread(path.open, "rb")
        running: set[asyncio.Task[dict[str, Any]]] = set()
        finished: list[dict[str, Any]] = []
        try:
            for number in range(1, count + 1):
                if len(running) >= self.part_concurrency:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    finished.extend(task.result() for task in done)
                body = await asyncio.to_thread(file.read, part_size)
                upload = s3.upload_part(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number, Body=body
                )
                running.add(asyncio.create_task(_part(number, upload)))
            finished.extend(await asyncio.gather(*running))
            running.clear()
        finally:
            # Let no part land after the caller aborts the upload: stop them and wait until they have.
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await asyncio.to_thread(file.close)
        return sorted(finished, key=lambda part: part["PartNumber"])

    async def open(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        check_range(start, end)
        full = self._full(key)
        if end is not None and start == end:
            await self.stat(key)  # an empty range cannot be asked of S3, but a missing key must still fail
            return
        ranged = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if start or end else {}
        s3 = await self._client()
        with self._errors("read an object"):
            response = await s3.get_object(Bucket=self.bucket, Key=full, **ranged)
            async with response["Body"] as body:
                async for chunk in body.iter_chunks(CHUNK_SIZE):
                    yield chunk

    async def stat(self, key: str) -> ObjectInfo:
        full = self._full(key)
        s3 = await self._client()
        with self._errors("read an object's metadata"):
            head = await s3.head_object(Bucket=self.bucket, Key=full)
        headers = headers_for(key)
        return ObjectInfo(
            key=key,
            size=head["ContentLength"],
            content_type=head.get("ContentType") or headers.content_type,
            cache_control=head.get("CacheControl") or headers.cache_control,
            etag=head["ETag"],
            modified=head["LastModified"],
        )

    async def delete_prefix(self, prefix: str) -> int:
        folder = check_folder(prefix)
        deleted = 0
        s3 = await self._client()
        with self._errors("delete objects"):
            async for page in self._pages(s3, self.prefix + folder):
                batch = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not batch:
                    continue
                result = await s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                if errors := result.get("Errors"):
                    reason = f"{len(errors)} objects refused ({errors[0].get('Code', 'unknown')})"
                    raise Unavailable(self._failure("delete objects", reason))
                deleted += len(batch)
        return deleted

    async def list(self, prefix: str = "") -> list[str]:
        folder = self.prefix + check_prefix(prefix)
        s3 = await self._client()
        keys: list[str] = []
        with self._errors("list objects"):
            async for page in self._pages(s3, folder):
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
        return sorted(keys)

    def _pages(self, s3: Any, full_prefix: str) -> AsyncIterator[dict[str, Any]]:
        paginator = s3.get_paginator("list_objects_v2")
        return paginator.paginate(
            Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": self.list_page_size}
        )

    def url(self, key: str) -> str | None:
        return public_url(self.public_base_url, key)

    async def presigned_url(self, key: str, expires_s: int) -> str:
        """A GET URL for `key` that S3 honours for `expires_s` seconds (signed playback of private media).

        Computed locally from the credentials: no request is sent. Never log it: it is a capability.
        """
        s3 = await self._client()
        with self._errors("presign a URL"):
            return await s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._full(key)},
                ExpiresIn=max(1, int(expires_s)),
            )

    # -- written in parts (PartWriter): an S3 multipart upload kept open across requests ------------

    min_part_bytes = MIN_PART_SIZE

    async def begin_parts(self, key: str) -> str:
        full = self._full(key)
        s3 = await self._client()
        with self._errors("start an upload in parts"):
            created = await s3.create_multipart_upload(
                Bucket=self.bucket, Key=full, ContentType="application/octet-stream"
            )
        return created["UploadId"]

    async def write_part(self, key: str, handle: str, number: int, offset: int, data: bytes) -> StoredPart:
        if not 1 <= number <= MAX_PARTS:
            raise Invalid(f"an S3 upload holds at most {MAX_PARTS} parts")
        full = self._full(key)
        s3 = await self._client()
        with self._errors("store a part"):
            response = await s3.upload_part(
                Bucket=self.bucket, Key=full, UploadId=handle, PartNumber=number, Body=data
            )
        return StoredPart(number=number, size=len(data), etag=response["ETag"])

    async def finish_parts(self, key: str, handle: str, parts: list[StoredPart]) -> None:
        full = self._full(key)
        s3 = await self._client()
        listed = [{"PartNumber": p.number, "ETag": p.etag} for p in sorted(parts, key=lambda p: p.number)]
        with self._errors("complete an upload in parts"):
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=handle, MultipartUpload={"Parts": listed}
            )

    async def abort_parts(self, key: str, handle: str) -> None:
        full = self._full(key)
        s3 = await self._client()
        try:
            with self._errors("abort an upload in parts"):
                await s3.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=handle)
        except NotFound:
            pass  # already completed or aborted

    def local_file(self, key: str) -> Path | None:
        return None


def _endpoint_host(endpoint_url: str | None) -> str:
    """`host:port` of the endpoint for messages: never the whole URL, which could carry credentials."""
    if not endpoint_url:
        return "AWS S3"
    parts = urlsplit(endpoint_url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


@functools.cache
def _session() -> AioSession:
    """One botocore session per process: it loads the S3 service model once (~0.1 s), not per client."""
    return get_session()


async def _part(number: int, upload: Any) -> dict[str, Any]:
    response = await upload
    return {"PartNumber": number, "ETag": response["ETag"]}
