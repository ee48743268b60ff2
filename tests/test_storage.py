"""The storage contract, run against both implementations: a local folder and S3 (moto over HTTP).

The same test body runs for both, so a caller can swap one for the other without noticing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fluxstudio.errors import Invalid, NotFound
from fluxstudio.storage import LocalStorage, S3Storage, Storage
from fluxstudio.storage.s3 import MiB
from tests.fixtures.s3 import S3Server

PUBLIC = "https://cdn.example.com/media"


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store: Storage
    if request.param == "local":
        store = LocalStorage(tmp_path / "media", public_base_url=PUBLIC)
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        bucket = await server.create_bucket()
        # A prefix, so every test also checks that it is added and removed consistently.
        settings = server.settings(bucket, prefix="media")
        store = S3Storage(settings, public_base_url=PUBLIC, multipart_threshold=6 * MiB, part_size=5 * MiB)
    assert isinstance(store, Storage)
    async with store:
        yield store


async def read(storage: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in storage.open(key, start=start, end=end)])


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


async def test_put_then_open_returns_the_same_bytes(storage: Storage) -> None:
    await storage.put("assets/a1/notes.json", b'{"hello": 1}')
    assert await read(storage, "assets/a1/notes.json") == b'{"hello": 1}'


async def test_put_replaces_an_existing_object(storage: Storage) -> None:
    await storage.put("a/b.txt", b"first version")
    await storage.put("a/b.txt", b"second")
    assert await read(storage, "a/b.txt") == b"second"
    assert (await storage.stat("a/b.txt")).size == 6


async def test_put_file_small_and_empty(storage: Storage, tmp_path: Path) -> None:
    data = random_file(tmp_path / "small.bin", 300_000)
    (tmp_path / "empty.bin").write_bytes(b"")
    await storage.put_file("up/small.bin", tmp_path / "small.bin")
    await storage.put_file("up/empty.bin", tmp_path / "empty.bin")
    assert await read(storage, "up/small.bin") == data
    assert await read(storage, "up/empty.bin") == b""
    assert (await storage.stat("up/empty.bin")).size == 0


async def test_put_file_above_the_multipart_threshold(storage: Storage, tmp_path: Path) -> None:
    # 6.5 MiB: two parts of 5 MiB and 1.5 MiB on S3 (threshold 6 MiB); one streamed copy locally.
    data = random_file(tmp_path / "big.mp4", 6 * MiB + 512 * 1024)
    await storage.put_file("assets/a1/source.mp4", tmp_path / "big.mp4")
    info = await storage.stat("assets/a1/source.mp4")
    assert info.size == len(data)
    assert info.content_type == "video/mp4"
    assert await read(storage, "assets/a1/source.mp4") == data


async def test_put_file_of_a_missing_path_is_invalid(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(Invalid):
        await storage.put_file("x/y.bin", tmp_path / "does-not-exist")


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, slice(0, None)),
        (10, None, slice(10, None)),
        (0, 10, slice(0, 10)),
        (5, 17, slice(5, 17)),
        (90, 1000, slice(90, None)),  # the end is clamped to the size, as S3 does
        (99, 100, slice(99, 100)),
        (7, 7, slice(7, 7)),
    ],
)
async def test_range_reads(storage: Storage, start: int, end: int | None, expected: slice) -> None:
    data = bytes(range(100))
    await storage.put("r/data.bin", data)
    assert await read(storage, "r/data.bin", start, end) == data[expected]


async def test_range_read_of_a_large_object_streams_in_several_chunks(
    storage: Storage, tmp_path: Path
) -> None:
    data = random_file(tmp_path / "seg.ts", 2 * MiB)
    await storage.put_file("r/seg.ts", tmp_path / "seg.ts")
    chunks = [chunk async for chunk in storage.open("r/seg.ts", start=1000, end=MiB + 1000)]
    assert len(chunks) > 1
    assert b"".join(chunks) == data[1000 : MiB + 1000]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (10, 5)])
async def test_malformed_ranges_are_invalid(storage: Storage, start: int, end: int | None) -> None:
    await storage.put("r/x.bin", b"0123456789")
    with pytest.raises(Invalid):
        await read(storage, "r/x.bin", start, end)


async def test_a_range_past_the_end_is_invalid(storage: Storage) -> None:
    await storage.put("r/x.bin", b"0123456789")
    with pytest.raises(Invalid):
        await read(storage, "r/x.bin", 10, None)


async def test_missing_objects_are_not_found(storage: Storage) -> None:
    await storage.put("present/a.txt", b"a")
    with pytest.raises(NotFound):
        await storage.stat("present/b.txt")
    with pytest.raises(NotFound):
        await read(storage, "present/b.txt")
    with pytest.raises(NotFound):
        await read(storage, "present/b.txt", 3, 3)
    with pytest.raises(NotFound):
        await storage.stat("present")  # a folder is not an object


async def test_stat_reports_size_type_cache_policy_and_etag(storage: Storage) -> None:
    await storage.put("hls/j1/720p/playlist.m3u8", b"#EXTM3U\n")
    info = await storage.stat("hls/j1/720p/playlist.m3u8")
    assert info.key == "hls/j1/720p/playlist.m3u8"
    assert info.size == 8
    assert info.content_type == "application/vnd.apple.mpegurl"
    assert info.cache_control == "public, max-age=1"  # a media playlist grows while its job runs
    assert info.etag.startswith('"') and len(info.etag) > 2
    assert info.modified.tzinfo is not None

    await storage.put("hls/j1/720p/playlist.m3u8", b"#EXTM3U\n#EXT-X-ENDLIST\n")
    assert (await storage.stat("hls/j1/720p/playlist.m3u8")).etag != info.etag


async def test_explicit_content_type_wins_where_it_can_be_kept(storage: Storage) -> None:
    await storage.put("up/source", b"\x00\x00\x00\x18ftypmp42", content_type="video/quicktime")
    info = await storage.stat("up/source")
    # A folder has nowhere to keep it, so local storage answers the type derived from the key.
    expected = "video/quicktime" if isinstance(storage, S3Storage) else "application/octet-stream"
    assert info.content_type == expected


async def test_list_is_sorted_relative_and_scoped_to_the_folder(storage: Storage) -> None:
    for key in ["p/j1/b.ts", "p/j1/a.ts", "p/j1/sub/c.m4s", "p/j10/d.ts", "q/e.ts"]:
        await storage.put(key, b"x")
    assert await storage.list("p/j1") == ["p/j1/a.ts", "p/j1/b.ts", "p/j1/sub/c.m4s"]
    assert await storage.list("p/j1/") == await storage.list("p/j1")
    assert await storage.list("") == ["p/j1/a.ts", "p/j1/b.ts", "p/j1/sub/c.m4s", "p/j10/d.ts", "q/e.ts"]
    assert await storage.list("nothing/here") == []


async def test_delete_prefix_deletes_the_folder_only_and_counts(storage: Storage) -> None:
    for key in ["p/j1/a.ts", "p/j1/b.ts", "p/j1/sub/c.m4s", "p/j10/d.ts", "p/j1.ts"]:
        await storage.put(key, b"x")
    assert await storage.delete_prefix("p/j1") == 3
    assert await storage.list("") == ["p/j1.ts", "p/j10/d.ts"]
    assert await storage.delete_prefix("p/j1") == 0
    with pytest.raises(NotFound):
        await storage.stat("p/j1/a.ts")


async def test_delete_prefix_refuses_the_whole_storage(storage: Storage) -> None:
    await storage.put("keep/me.txt", b"x")
    for prefix in ["", "/"]:
        with pytest.raises(Invalid):
            await storage.delete_prefix(prefix)
    assert await storage.list("") == ["keep/me.txt"]


BAD_KEYS = [
    "",
    "/etc/passwd",
    "../outside.txt",
    "a/../../outside.txt",
    "a/./b",
    "a//b",
    "a/",
    "a\\..\\b",
    "a\x00b",
    "a\nb",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_unsafe_keys_are_invalid_everywhere(storage: Storage, key: str) -> None:
    with pytest.raises(Invalid):
        await storage.put(key, b"x")
    with pytest.raises(Invalid):
        await read(storage, key)
    with pytest.raises(Invalid):
        await storage.stat(key)
    with pytest.raises(Invalid):
        storage.url(key)
    assert await storage.list("") == []


@pytest.mark.parametrize("prefix", ["..", "../x", "/abs", "a/../..", "a\\b"])
async def test_unsafe_prefixes_are_invalid(storage: Storage, prefix: str) -> None:
    with pytest.raises(Invalid):
        await storage.list(prefix)
    with pytest.raises(Invalid):
        await storage.delete_prefix(prefix)


async def test_url_joins_the_public_base_and_encodes_the_key(storage: Storage) -> None:
    assert storage.url("hls/j1/master.m3u8") == f"{PUBLIC}/hls/j1/master.m3u8"
    assert storage.url("a b/é#.ts") == f"{PUBLIC}/a%20b/%C3%A9%23.ts"


async def test_unicode_keys_round_trip(storage: Storage) -> None:
    await storage.put("ünï/cødé file.vtt", b"WEBVTT\n")
    assert await storage.list("ünï") == ["ünï/cødé file.vtt"]
    assert (await storage.stat("ünï/cødé file.vtt")).content_type == "text/vtt"
