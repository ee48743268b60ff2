"""`/media`: HLS outputs of local storage with byte ranges, HEAD, validators and content types; nothing
outside `hls/` (uploaded sources) is ever served."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fluxstudio.storage import LocalStorage
from tests.fixtures.platform import ApiServer
from tests.test_api_service import assert_problem

SEGMENT = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture(scope="module")
async def stored(media_dir: Path) -> str:
    storage = LocalStorage(media_dir)
    prefix = "hls/ast_media_test/job_media_test"
    await storage.put(f"{prefix}/master.m3u8", b"#EXTM3U\n")
    await storage.put(f"{prefix}/720p/seg_00001.m4s", SEGMENT)
    await storage.put(f"{prefix}/720p/init.mp4", b"init")
    await storage.put(f"{prefix}/720p/seg_00001.ts", b"ts")
    await storage.put("sources/ast_media_test/source.mp4", b"private")
    return prefix


async def test_whole_object_with_types_and_validators(api: ApiServer, stored: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        full = await client.get(f"/media/{stored}/720p/seg_00001.m4s")
        assert full.status_code == 200 and full.content == SEGMENT
        assert full.headers["content-type"] == "video/iso.segment"
        assert full.headers["accept-ranges"] == "bytes"
        assert full.headers["content-length"] == str(len(SEGMENT))
        assert "immutable" in full.headers["cache-control"]
        etag, modified = full.headers["etag"], full.headers["last-modified"]
        segment = f"/media/{stored}/720p/seg_00001.m4s"
        assert (await client.get(segment, headers={"If-None-Match": etag})).status_code == 304
        assert (await client.get(segment, headers={"If-Modified-Since": modified})).status_code == 304
        types = {
            "master.m3u8": "application/vnd.apple.mpegurl",
            "720p/init.mp4": "video/mp4",
            "720p/seg_00001.ts": "video/mp2t",
        }
        for name, content_type in types.items():
            response = await client.get(f"/media/{stored}/{name}")
            assert response.headers["content-type"] == content_type, name
        assert "max-age=60" in (await client.get(f"/media/{stored}/master.m3u8")).headers["cache-control"]


async def test_ranges(api: ApiServer, stored: str) -> None:
    path = f"/media/{stored}/720p/seg_00001.m4s"
    size = len(SEGMENT)
    async with httpx.AsyncClient(base_url=api.url) as client:
        first = await client.get(path, headers={"Range": "bytes=0-99"})
        assert first.status_code == 206 and first.content == SEGMENT[:100]
        assert first.headers["content-range"] == f"bytes 0-99/{size}"
        middle = await client.get(path, headers={"Range": "bytes=1000-"})
        assert middle.status_code == 206 and middle.content == SEGMENT[1000:]
        suffix = await client.get(path, headers={"Range": "bytes=-10"})
        assert suffix.content == SEGMENT[-10:]
        assert suffix.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
        clamped = await client.get(path, headers={"Range": f"bytes=10-{size * 2}"})
        assert clamped.status_code == 206 and clamped.content == SEGMENT[10:]
        past = await client.get(path, headers={"Range": f"bytes={size}-"})
        assert_problem(past, 416)
        assert past.headers["content-range"] == f"bytes */{size}"
        stale = await client.get(path, headers={"Range": "bytes=0-9", "If-Range": '"not-the-etag"'})
        assert stale.status_code == 200 and stale.content == SEGMENT
        garbage = await client.get(path, headers={"Range": "pages=1-2"})
        assert garbage.status_code == 200


async def test_head(api: ApiServer, stored: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        head = await client.head(f"/media/{stored}/720p/seg_00001.m4s")
        ranged = await client.head(f"/media/{stored}/720p/seg_00001.m4s", headers={"Range": "bytes=0-9"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(SEGMENT)) and head.headers["etag"]
    assert ranged.status_code == 206 and ranged.headers["content-length"] == "10"


@pytest.mark.parametrize(
    "key",
    [
        "sources/ast_media_test/source.mp4",
        "hls/ast_media_test/nothing.m3u8",
        "hls/../sources/ast_media_test/source.mp4",
        "hls/ast_media_test",
        "hls/%2e%2e/sources/ast_media_test/source.mp4",
    ],
)
async def test_only_existing_hls_objects(api: ApiServer, stored: str, key: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get(f"/media/{key}")
    assert_problem(response, 404)
    assert b"private" not in response.content
