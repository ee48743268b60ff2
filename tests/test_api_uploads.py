"""Projects and uploads through a real server: multipart and raw, transcode=true, the size limit, empty and
hostile bodies (nothing kept: no object, no row, no temporary file), one-use upload URLs, idempotent jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.fixtures.media import make_clip_in
from tests.fixtures.platform import ApiServer, ApiUser, wait_for
from tests.test_api_service import assert_problem


@pytest.fixture
async def owner(make_user) -> ApiUser:
    return await make_user("owner")


async def new_project(client: httpx.AsyncClient, name: str = "clips") -> str:
    response = await client.post("/api/v1/projects", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def stored_sources(media_dir: Path) -> set[str]:
    root = media_dir / "sources"
    if not root.exists():
        return set()
    return {p.relative_to(media_dir).as_posix() for p in root.rglob("*") if p.is_file()}


def temp_files(server: ApiServer) -> list[Path]:
    folder = Path(server.env["FLUXSTUDIO_HOME"]) / "tmp"
    return [p for p in folder.iterdir()] if folder.exists() else []


async def test_projects_create_list_get(owner: ApiUser) -> None:
    async with owner.client() as client:
        first = await new_project(client, "Holidays")
        second = await new_project(client, "Work")
        listed = (await client.get("/api/v1/projects")).json()["items"]
        got = await client.get(f"/api/v1/projects/{first}")
    assert [p["id"] for p in listed] == [first, second]
    assert got.status_code == 200 and got.json()["name"] == "Holidays"
    assert got.json()["created_at"].endswith(("Z", "+00:00"))


async def test_multipart_upload_makes_an_asset(owner: ApiUser, api_clip: Path, media_dir: Path, api) -> None:
    async with owner.client() as client:
        project = await new_project(client)
        with api_clip.open("rb") as f:
            response = await client.post(f"/api/v1/projects/{project}/assets",
                                         files={"file": ("my clip.mp4", f, "video/mp4")})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["job"] is None
        asset = body["asset"]
        assert asset["filename"] == "my clip.mp4" and asset["status"] == "uploaded"
        assert asset["size_bytes"] == api_clip.stat().st_size
        assert asset["media"]["has_video"] and asset["media"]["width"] == 320
        assert f"sources/{asset['id']}/source.mp4" in stored_sources(media_dir)
        listed = (await client.get(f"/api/v1/projects/{project}/assets")).json()["items"]
        assert [a["id"] for a in listed] == [asset["id"]]
    assert temp_files(api) == []


async def test_raw_upload_with_transcode_starts_a_job(owner: ApiUser, api_clip: Path) -> None:
    async with owner.client() as client:
        project = await new_project(client)
        response = await client.post(
            f"/api/v1/projects/{project}/assets", params={"filename": "raw.mp4", "transcode": "true"},
            content=api_clip.read_bytes(), headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["asset"]["filename"] == "raw.mp4"
        assert body["job"]["asset_id"] == body["asset"]["id"] and body["job"]["kind"] == "hls"
        job = await client.get(f"/api/v1/jobs/{body['job']['id']}")
        assert job.status_code == 200
        jobs = (await client.get("/api/v1/jobs", params={"asset_id": body["asset"]["id"]})).json()["items"]
        assert [j["id"] for j in jobs] == [body["job"]["id"]]
        await client.post(f"/api/v1/jobs/{body['job']['id']}/cancel")


async def test_streamed_chunked_upload(owner: ApiUser, api_clip: Path) -> None:
    data = api_clip.read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7000):
            yield data[i : i + 7000]

    async with owner.client() as client:
        project = await new_project(client)
        url = f"/api/v1/projects/{project}/assets?filename=chunked.mp4"
        response = await client.post(url, content=chunks())
    assert response.status_code == 201, response.text
    assert response.json()["asset"]["size_bytes"] == len(data)


@pytest.fixture(scope="module")
def small_api(start_api, api_env: dict) -> ApiServer:
    """A server whose MAX_UPLOAD_BYTES is 64 KiB, with a storage folder of its own."""
    home = Path(api_env["FLUXSTUDIO_HOME"]).parent / "small-api-home"
    return start_api({**api_env, "MAX_UPLOAD_BYTES": str(64 * 1024), "FLUXSTUDIO_HOME": str(home),
                      "STORAGE_URL": (home / "media").as_uri()})


async def test_over_the_limit_is_413_and_nothing_kept(
    make_user, small_api: ApiServer, tmp_path: Path
) -> None:
    user = await make_user("big", server=small_api)
    big = b"\0" * (200 * 1024)

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 16 * 1024):
            yield big[i : i + 16 * 1024]

    async with user.client() as client:
        project = await new_project(client)
        url = f"/api/v1/projects/{project}/assets?filename=big.mp4"
        declared = await client.post(url, content=big)  # Content-Length says too much: refused unread
        assert assert_problem(declared, 413)["code"] == "too_large"
        streamed = await client.post(url, content=chunked())  # no length: refused once past the limit
        assert assert_problem(streamed, 413)["code"] == "too_large"
        multipart = await client.post(url, files={"file": ("big.mp4", big)})
        assert_problem(multipart, 413)
        assert (await client.get(f"/api/v1/projects/{project}/assets")).json()["items"] == []
        # the connection is still usable after a refused upload
        assert (await client.get("/api/v1/projects")).status_code == 200
        ticket = (await client.post(f"/api/v1/projects/{project}/uploads", json={"filename": "a.aac"})).json()
    assert stored_sources(Path(small_api.env["FLUXSTUDIO_HOME"]) / "media") == set()
    async with httpx.AsyncClient(timeout=60) as anonymous:
        refused = await anonymous.put(ticket["upload_url"], content=big)
        assert_problem(refused, 413)
        # refused by its announced length before the URL was spent: it still takes a file that fits
        small = make_clip_in(tmp_path, "small", video=False, container="aac", duration=0.5)
        assert (await anonymous.put(ticket["upload_url"], content=small.read_bytes())).status_code == 201
    assert len(stored_sources(Path(small_api.env["FLUXSTUDIO_HOME"]) / "media")) == 1  # the small one
    assert temp_files(small_api) == []


async def test_empty_upload_is_400(owner: ApiUser) -> None:
    async with owner.client() as client:
        project = await new_project(client)
        raw = await client.post(f"/api/v1/projects/{project}/assets?filename=e.mp4", content=b"")
        assert assert_problem(raw, 400)["code"] == "empty_upload"
        multipart = await client.post(f"/api/v1/projects/{project}/assets", files={"file": ("e.mp4", b"")})
        assert assert_problem(multipart, 400)["code"] == "empty_upload"
        no_file = await client.post(f"/api/v1/projects/{project}/assets", files={"other": ("x", b"abc")})
        assert_problem(no_file, 422)


def hostile_bodies(clip: Path) -> dict[str, bytes]:
    data = clip.read_bytes()
    return {
        "text.mp4": b"hello, this is not a video\n" * 100,
        "truncated.mp4": data[: len(data) // 3],
        "local.m3u8": b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nfile:///etc/passwd\n"
        + f"#EXTINF:2,\n{clip}\n#EXT-X-ENDLIST\n".encode(),
        "list.ffconcat": f"ffconcat version 1.0\nfile '{clip}'\nfile '/etc/passwd'\n".encode(),
    }


async def test_unreadable_uploads_are_422_and_nothing_kept(
    owner: ApiUser, api_clip: Path, media_dir: Path, pool: asyncpg.Pool, api: ApiServer
) -> None:
    async with owner.client() as client:
        project = await new_project(client)
        before = stored_sources(media_dir)
        for name, body in hostile_bodies(api_clip).items():
            response = await client.post(f"/api/v1/projects/{project}/assets?filename={name}", content=body)
            problem = assert_problem(response, 422)
            assert problem["code"] == "unreadable_media", (name, problem)
            multipart = await client.post(f"/api/v1/projects/{project}/assets", files={"file": (name, body)})
            assert_problem(multipart, 422)
    assert stored_sources(media_dir) == before
    assert await pool.fetchval("SELECT count(*) FROM assets WHERE project_id = $1", project) == 0
    assert temp_files(api) == []


async def test_one_use_upload_url(owner: ApiUser, api_clip: Path, pool: asyncpg.Pool) -> None:
    async with owner.client() as client:
        project = await new_project(client)
        ticket = await client.post(f"/api/v1/projects/{project}/uploads",
                                   json={"filename": "agent.mp4", "transcode": True})
        assert ticket.status_code == 201, ticket.text
        url = ticket.json()["upload_url"]
        assert url.startswith(owner.server.url + "/api/v1/uploads/")
    async with httpx.AsyncClient(timeout=60) as anonymous:  # no Authorization header at all
        first = await anonymous.put(url, content=api_clip.read_bytes())
        assert first.status_code == 201, first.text
        assert first.json()["asset"]["filename"] == "agent.mp4"
        assert first.json()["asset"]["project_id"] == project
        assert first.json()["job"] is not None
        job_id = first.json()["job"]["id"]
        again = await anonymous.put(url, content=api_clip.read_bytes())
        assert assert_problem(again, 410)["code"] == "gone"
        forged = await anonymous.put(url[:-4] + "AAAA", content=b"x")
        assert_problem(forged, 410)

    async with owner.client() as client:
        await client.post(f"/api/v1/jobs/{job_id}/cancel")
        ticket = await client.post(f"/api/v1/projects/{project}/uploads", json={"filename": "late.mp4"})
        ticket = ticket.json()
    await pool.execute(
        "UPDATE upload_capabilities SET expires_at = now() - interval '1 second' WHERE id = $1", ticket["id"]
    )
    async with httpx.AsyncClient(timeout=60) as anonymous:
        expired = await anonymous.put(ticket["upload_url"], content=api_clip.read_bytes())
    assert_problem(expired, 410)


async def test_job_creation_is_idempotent(owner: ApiUser, api_clip: Path) -> None:
    async with owner.client() as client:
        project = await new_project(client)
        asset = (await client.post(f"/api/v1/projects/{project}/assets?filename=i.mp4",
                                   content=api_clip.read_bytes())).json()["asset"]
        path = f"/api/v1/assets/{asset['id']}/jobs"
        options = {"renditions": ["240p"], "segment_seconds": 2}
        first = await client.post(path, json=options, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 202, first.text
        again = await client.post(path, json=options, headers={"Idempotency-Key": "k-1"})
        other = await client.post(path, json=options, headers={"Idempotency-Key": "k-2"})
        assert again.json()["id"] == first.json()["id"]
        assert other.json()["id"] != first.json()["id"]
        conflict = await client.post(path, json={"segment_seconds": 6}, headers={"Idempotency-Key": "k-1"})
        assert_problem(conflict, 409)
        unknown = await client.post(path, json={"renditions": ["9000p"]})
        assert_problem(unknown, 422)
        extra = await client.post(path, json={"bitrate": 5})
        assert_problem(extra, 422)
        bad_status = await client.get("/api/v1/jobs", params={"status": "sleeping"})
        assert_problem(bad_status, 422)
        for job in (first.json(), other.json()):
            await client.post(f"/api/v1/jobs/{job['id']}/cancel")


async def test_client_hanging_up_mid_upload_leaves_nothing(owner: ApiUser, api: ApiServer) -> None:
    async with owner.client() as client:
        project = await new_project(client)
    host, port = api.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"POST /api/v1/projects/{project}/assets?filename=gone.mp4 HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {owner.token}\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n".encode()
        + b"\0" * (3 * 1024 * 1024)
    )
    await writer.drain()
    await wait_for(lambda: len(temp_files(api)) == 1, 10, "the upload to reach the temporary file")
    writer.close()
    await wait_for(lambda: any(r["event"] == "client_disconnected" for r in api.log_records()), 10,
                   "the server to see the client go")
    assert temp_files(api) == []
    assert not any(r["event"] == "request_failed" and r.get("route", "").endswith("/assets")
                   for r in api.log_records())
    async with owner.client() as client:
        assert (await client.get(f"/api/v1/projects/{project}/assets")).json()["items"] == []
