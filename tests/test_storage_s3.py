"""What only the S3 implementation does: headers as an HTTP client sees them, multipart uploads, path- and
virtual-hosted addressing, and failures translated without leaking the secret key.

moto serves anonymous reads, so the header checks are plain HTTP requests, as a CDN or player makes them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiobotocore.config import AioConfig

from fluxstudio.config import S3Settings, Secret, load_settings
from fluxstudio.errors import FluxError, NotFound, Unavailable
from fluxstudio.storage import S3Storage, open_storage
from fluxstudio.storage.content import IMMUTABLE, LIVE, NO_CACHE, SHORT
from fluxstudio.storage.s3 import MiB, _session, addressing_style
from tests.fixtures.s3 import SECRET_KEY, LocalhostResolver, S3Server


@pytest.fixture
async def s3(s3_settings: S3Settings) -> AsyncIterator[S3Storage]:
    async with S3Storage(s3_settings, multipart_threshold=6 * MiB, part_size=5 * MiB) as storage:
        yield storage


@pytest.fixture
async def admin(s3_server: S3Server) -> AsyncIterator[Any]:
    """A plain client of our own, beside the storage under test, to look at what the server holds."""
    async with _session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        config=AioConfig(s3={"addressing_style": "path"}),
    ) as client:
        yield client


async def fetch(admin: Any, bucket: str, key: str, method: str = "GET") -> httpx.Response:
    """Fetch an object over plain HTTP with a presigned URL, as a player behind a CDN would."""
    operation = "get_object" if method == "GET" else "head_object"
    url = await admin.generate_presigned_url(operation, Params={"Bucket": bucket, "Key": key})
    async with httpx.AsyncClient() as http:
        return await http.request(method, url)


@pytest.mark.parametrize(
    ("key", "content_type", "cache_control"),
    [
        ("hls/j1/master.m3u8", "application/vnd.apple.mpegurl", SHORT),
        ("hls/j1/720p/playlist.m3u8", "application/vnd.apple.mpegurl", LIVE),
        ("hls/j1/720p/seg_00001.m4s", "video/iso.segment", IMMUTABLE),
        ("hls/j1/720p/init_0.mp4", "video/mp4", IMMUTABLE),
        ("hls/j1/360p/seg_00001.ts", "video/mp2t", IMMUTABLE),
        ("hls/j1/audio/seg_00001.aac", "audio/aac", IMMUTABLE),
        ("assets/a1/source.mp4", "video/mp4", NO_CACHE),
        ("assets/a1/probe.json", "application/json", NO_CACHE),
    ],
)
async def test_http_clients_see_the_content_type_and_cache_policy(
    s3: S3Storage, admin: Any, s3_bucket: str, key: str, content_type: str, cache_control: str
) -> None:
    await s3.put(key, b"payload")
    got = await fetch(admin, s3_bucket, key)
    head = await fetch(admin, s3_bucket, key, "HEAD")
    assert got.status_code == 200
    assert got.content == b"payload"
    for response in (got, head):
        assert response.headers["content-type"] == content_type
        assert response.headers["cache-control"] == cache_control


async def test_multipart_upload_sets_headers_and_uses_parts(
    s3: S3Storage, admin: Any, s3_bucket: str, tmp_path: Path
) -> None:
    data = os.urandom(11 * MiB)  # parts of 5, 5 and 1 MiB
    (tmp_path / "seg.ts").write_bytes(data)
    await s3.put_file("hls/j1/big/seg_00001.ts", tmp_path / "seg.ts")

    info = await s3.stat("hls/j1/big/seg_00001.ts")
    assert info.etag.endswith('-3"'), "S3 gives a multipart object the etag md5-of-md5s-<parts>"
    response = await fetch(admin, s3_bucket, "hls/j1/big/seg_00001.ts")
    assert response.content == data
    assert response.headers["content-type"] == "video/mp2t"
    assert response.headers["cache-control"] == IMMUTABLE


async def test_a_cancelled_multipart_upload_is_aborted(
    admin: Any, s3_settings: S3Settings, tmp_path: Path
) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(30 * MiB))
    storage = S3Storage(s3_settings, multipart_threshold=5 * MiB, part_size=5 * MiB, part_concurrency=1)
    async with storage:

        async def in_progress() -> list[dict]:
            return (await admin.list_multipart_uploads(Bucket=s3_settings.bucket)).get("Uploads", [])

        upload = asyncio.create_task(storage.put_file("up/big.bin", tmp_path / "big.bin"))
        async with asyncio.timeout(10):
            while not await in_progress():
                assert not upload.done(), "the upload finished before the test could see it in progress"
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        assert await in_progress() == []
        assert await storage.list("up") == []


async def test_delete_prefix_and_list_follow_pages(s3: S3Storage) -> None:
    s3.list_page_size = 2  # seven objects take four pages, each deleted as its own batch
    keys = [f"hls/j1/720p/seg_{n:05}.m4s" for n in range(7)]
    for key in keys:
        await s3.put(key, b"x")
    await s3.put("hls/j2/master.m3u8", b"x")
    assert await s3.list("hls/j1") == keys
    assert await s3.delete_prefix("hls/j1") == 7
    assert await s3.list("") == ["hls/j2/master.m3u8"]


async def test_path_style_asks_dns_for_the_endpoint_only(s3_server: S3Server, s3_bucket: str) -> None:
    resolver = LocalhostResolver()
    endpoint = f"http://localhost:{s3_server.port}"
    settings = s3_server.settings(s3_bucket, "media", addressing_style="path", endpoint_url=endpoint)
    async with S3Storage(settings, resolver=resolver) as storage:
        await storage.put("a/b.txt", b"path style")
        assert b"".join([c async for c in storage.open("a/b.txt")]) == b"path style"
    assert set(resolver.asked) == {"localhost"}


async def test_virtual_hosted_style_sends_the_bucket_in_the_host_name(
    s3_server: S3Server, s3_bucket: str, admin: Any
) -> None:
    # moto reads the bucket from the Host header when it is `<bucket>.localhost:PORT`; had the request
    # gone path-style to that host, moto would have taken `media` for the bucket and answered NoSuchBucket.
    resolver = LocalhostResolver()
    endpoint = f"http://localhost:{s3_server.port}"
    settings = s3_server.settings(s3_bucket, "media", addressing_style="virtual", endpoint_url=endpoint)
    async with S3Storage(settings, resolver=resolver) as storage:
        await storage.put("a/b.txt", b"virtual style")
        assert b"".join([c async for c in storage.open("a/b.txt")]) == b"virtual style"
        assert await storage.list("a") == ["a/b.txt"]
    assert set(resolver.asked) == {f"{s3_bucket}.localhost"}
    response = await fetch(admin, s3_bucket, "media/a/b.txt")  # it landed in that bucket, under the prefix
    assert response.content == b"virtual style"


@pytest.mark.parametrize(
    ("endpoint", "style", "host_asked"),
    [
        ("https://nyc3.digitaloceanspaces.com", "auto", "media-bucket.nyc3.digitaloceanspaces.com"),
        ("https://nyc3.digitaloceanspaces.com", "path", "nyc3.digitaloceanspaces.com"),
        ("http://minio:9000", "auto", "minio"),
        ("http://minio:9000", "virtual", "media-bucket.minio"),
        ("http://localhost:9", "auto", "localhost"),
    ],
)
async def test_addressing_style_picks_the_host_that_is_dialled(
    endpoint: str, style: str, host_asked: str
) -> None:
    # The resolver refuses every name that is not *.localhost, so nothing leaves the machine; what it
    # was asked shows where the request would have gone.
    resolver = LocalhostResolver()
    settings = S3Settings("media-bucket", "", endpoint, "nyc3", Secret("k"), Secret(SECRET_KEY), style)  # type: ignore[arg-type]
    async with S3Storage(settings, resolver=resolver, max_attempts=1) as storage:
        with pytest.raises(Unavailable):
            await storage.put("a.txt", b"x")
    assert resolver.asked[0] == host_asked


def test_auto_addressing_is_path_style_for_unknown_endpoints() -> None:
    def style(endpoint: str | None, wanted: str = "auto", bucket: str = "bkt") -> str:
        return addressing_style(S3Settings(bucket, "", endpoint, None, None, None, wanted))  # type: ignore[arg-type]

    assert style(None) == "auto"  # AWS itself: botocore knows best
    assert style("https://fra1.digitaloceanspaces.com") == "virtual"
    assert style("https://s3.eu-west-1.amazonaws.com") == "virtual"
    assert style("http://minio:9000") == "path"
    assert style("http://127.0.0.1:9000") == "path"
    assert style("http://minio:9000", "virtual") == "virtual"
    assert style("https://s3.eu-west-1.amazonaws.com", bucket="media.example.com") == "path"


def messages(error: BaseException) -> str:
    """str and repr of an error and of everything it was raised from."""
    texts = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


async def test_a_closed_port_is_unavailable_and_names_host_and_bucket(
    s3_server: S3Server, closed_port: int
) -> None:
    settings = s3_server.settings("offline-bucket", "media", endpoint_url=f"http://127.0.0.1:{closed_port}")
    # One attempt each: botocore's standard retries would spend seconds backing off from a dead port.
    async with S3Storage(settings, max_attempts=1) as storage:
        failures = [
            storage.put("secret-plans/a.txt", b"x"),
            storage.stat("secret-plans/a.txt"),
            storage.list("secret-plans"),
            storage.delete_prefix("secret-plans"),
            anext(storage.open("secret-plans/a.txt")),
        ]
        for failure in failures:
            with pytest.raises(Unavailable) as caught:
                await failure
            message = str(caught.value)
            assert f"127.0.0.1:{closed_port}" in message
            assert "offline-bucket" in message
            assert "secret-plans" not in message
            assert SECRET_KEY not in messages(caught.value)


async def test_a_missing_bucket_is_unavailable_not_not_found(s3_server: S3Server) -> None:
    async with S3Storage(s3_server.settings("no-such-bucket-here")) as storage:
        with pytest.raises(Unavailable, match=r"no-such-bucket-here.*NoSuchBucket"):
            await storage.put("a.txt", b"x")
        with pytest.raises(Unavailable):
            await storage.list("")


async def test_the_secret_key_never_shows(
    s3: S3Storage, s3_server: S3Server, s3_settings: S3Settings
) -> None:
    assert SECRET_KEY not in repr(s3) + str(s3) + repr(s3_settings)
    errors: list[FluxError] = []
    for attempt in (s3.stat("missing.txt"), anext(s3.open("missing.txt"))):
        try:
            await attempt
        except NotFound as exc:
            errors.append(exc)
    assert len(errors) == 2
    for error in errors:
        assert SECRET_KEY not in messages(error)


def test_open_storage_builds_s3_from_the_environment(s3_server: S3Server) -> None:
    settings = load_settings("worker", {**s3_server.environ("env-bucket", "media"), **SERVICES})
    storage = open_storage(settings, public_base_url="https://cdn.example.com/media")
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.prefix) == ("env-bucket", "media/")
    assert storage.url("hls/j1/master.m3u8") == "https://cdn.example.com/media/hls/j1/master.m3u8"
    assert SECRET_KEY not in repr(storage)


SERVICES = {"DATABASE_URL": "postgresql://u@127.0.0.1:5432/db", "REDIS_URL": "redis://127.0.0.1:6379/0"}


async def test_retries_are_bounded_and_a_5xx_is_unavailable(s3_server: S3Server) -> None:
    hits = 0

    async def overloaded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hits
        hits += 1
        await reader.readuntil(b"\r\n\r\n")
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        writer.write(b"HTTP/1.1 503 Slow Down\r\nConnection: close\r\nContent-Type: application/xml\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(overloaded, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = s3_server.settings("busy-bucket", endpoint_url=f"http://127.0.0.1:{port}")
    async with server, S3Storage(settings, max_attempts=2) as storage:
        with pytest.raises(Unavailable) as caught:
            await storage.list("hls")
    assert hits == 2
    assert str(caught.value) == (
        f"S3 storage at 127.0.0.1:{port} (bucket busy-bucket) could not list objects: error SlowDown"
    )
