"""URL imports through a real API, worker and loopback file server: 422 at once for what can be known
without DNS, `importing` then `uploaded` (or a transcode), and `failed` with a reason for a redirect to a
private address, a remote error, unreadable media, the size limit and JOB_TIMEOUT_SECONDS (with an
asset.failed webhook); an import whose wake-up Redis lost still happens; another user's project is 404."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.fixtures.platform import ApiServer, ApiUser, wait_for
from tests.fixtures.receiver import Answer, Receiver
from tests.test_api_uploads import new_project

ALLOW_LOOPBACK = {"IMPORT_ALLOWED_NETWORKS": "127.0.0.1/32"}


@pytest.fixture
def import_env(api_env: dict[str, str]) -> dict[str, str]:
    return {**api_env, **ALLOW_LOOPBACK}


@pytest.fixture
def files(receiver, api_clip: Path) -> Receiver:
    r: Receiver = receiver()
    clip = api_clip.read_bytes()
    r.routes["/media/clip.mp4"] = lambda: Answer(200, clip, {"Content-Type": "video/mp4"})
    r.routes["/go"] = lambda: Answer(302, headers={"Location": "/media/clip.mp4"})
    metadata = "http://169.254.169.254/latest/meta-data/"
    r.routes["/metadata"] = lambda: Answer(302, headers={"Location": metadata})
    r.routes["/missing.mp4"] = lambda: Answer(404, b"no")
    r.routes["/junk.mp4"] = lambda: Answer(200, b"not media at all " * 100)
    return r


async def start_import(user: ApiUser, project: str, url: str, **extra) -> dict:
    async with user.client() as client:
        response = await client.post(f"/api/v1/projects/{project}/imports", json={"url": url, **extra})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["asset"]["status"] == "importing" and body["job"] is None
    return body["asset"]


async def settled(user: ApiUser, asset_id: str, within_s: float = 180) -> dict:
    async def check() -> dict | None:
        async with user.client() as client:
            asset = (await client.get(f"/api/v1/assets/{asset_id}")).json()
        return asset if asset["status"] != "importing" else None

    return await wait_for(check, within_s, f"import of {asset_id} to settle")


async def test_refused_at_once_when_knowable(api: ApiServer, make_user) -> None:
    user = await make_user("importer")
    async with user.client() as client:
        project = await new_project(client)
        for url in (
            "ftp://example.com/a.mp4", "file:///etc/passwd", "http://10.0.0.1/a.mp4",
            "http://169.254.169.254/latest/meta-data/", "http://[::ffff:127.0.0.1]/a.mp4",
            "http://localhost/a.mp4", "http://127.0.0.1:9/a.mp4", "http://[fe80::1]/a.mp4",
        ):  # fmt: skip
            response = await client.post(f"/api/v1/projects/{project}/imports", json={"url": url})
            assert response.status_code == 422, url
            assert response.json()["code"] == "url_refused"
        assert (await client.get(f"/api/v1/projects/{project}/assets")).json()["items"] == []
    other = await make_user("other")
    async with other.client() as client:
        response = await client.post(
            f"/api/v1/projects/{project}/imports", json={"url": "https://example.com/a.mp4"}
        )
        assert response.status_code == 404


async def test_imports_succeed_or_fail_with_a_reason(
    fresh_api,
    import_env,
    make_user,
    files: Receiver,
    receiver,
    start_worker,
    pool: asyncpg.Pool,
    api_clip: Path,
) -> None:
    api = fresh_api(import_env)
    user = await make_user("importer", api)
    hooks: Receiver = receiver()
    async with user.client() as client:
        project = await new_project(client)
        made = await client.post("/api/v1/webhooks", json={"url": hooks.url, "events": ["asset.failed"]})
        assert made.status_code == 201
    plain = await start_import(user, project, f"{files.url}/go")
    clip_url = f"{files.url}/media/clip.mp4"
    named = await start_import(user, project, clip_url, filename="Trailer.mp4", transcode=True)
    redirected = await start_import(user, project, f"{files.url}/metadata")
    missing = await start_import(user, project, f"{files.url}/missing.mp4")
    junk = await start_import(user, project, f"{files.url}/junk.mp4")
    start_worker(import_env)

    ok = await settled(user, plain["id"])
    assert ok["status"] == "uploaded" and ok["error"] is None
    assert ok["filename"] == "go"  # named after the URL asked for, not where it redirected
    assert ok["size_bytes"] == api_clip.stat().st_size and ok["media"]["has_video"]
    assert (await settled(user, named["id"]))["filename"] == "Trailer.mp4"

    async def jobs_of_named() -> list[dict]:
        async with user.client() as client:
            return (await client.get(f"/api/v1/jobs?asset_id={named['id']}")).json()["items"]

    jobs = await wait_for(jobs_of_named, 60, "the transcode job of the import")  # made once it landed
    assert len(jobs) == 1 and jobs[0]["options"]["segment_format"] == "fmp4"

    failures = {a["id"]: await settled(user, a["id"]) for a in (redirected, missing, junk)}
    assert failures[redirected["id"]]["error"]["code"] == "url_refused"
    assert "link-local" in failures[redirected["id"]]["error"]["message"]
    assert failures[missing["id"]]["error"]["code"] == "fetch_failed"
    assert "404" in failures[missing["id"]]["error"]["message"]
    assert failures[junk["id"]]["error"]["code"] == "unreadable_media"
    assert all(a["status"] == "failed" and a["media"] is None for a in failures.values())
    keys = await pool.fetch("SELECT source_key FROM assets WHERE id = ANY($1)", list(failures))
    assert [k["source_key"] for k in keys] == [None, None, None]
    posts = await hooks.wait_for(3)
    assert {json.loads(p.body)["data"]["id"] for p in posts} == set(failures)


async def test_the_size_limit_and_a_lost_wake_up(
    fresh_api, import_env, make_user, files: Receiver, start_worker, redis_url: str
) -> None:
    api = fresh_api(import_env)
    user = await make_user("importer", api)
    async with user.client() as client:
        project = await new_project(client)
    stalled = threading.Event()
    files.routes["/slow.mp4"] = lambda: (stalled.wait(60), Answer(200, b"late"))[1]
    big = await start_import(user, project, f"{files.url}/media/clip.mp4")
    slow = await start_import(user, project, f"{files.url}/slow.mp4")
    flusher = aioredis.from_url(redis_url)
    await flusher.flushdb()  # the wake-ups are gone; PostgreSQL still says the imports wait
    await flusher.aclose()
    start_worker({**import_env, "MAX_UPLOAD_BYTES": "1000", "JOB_TIMEOUT_SECONDS": "10"})
    try:
        failed = await settled(user, big["id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "too_large"
        assert "MAX_UPLOAD_BYTES" in failed["error"]["message"]
        late = await settled(user, slow["id"])
        assert late["error"]["code"] == "timeout" and "JOB_TIMEOUT_SECONDS" in late["error"]["message"]
    finally:
        stalled.set()


async def test_the_mcp_tool_imports_and_refuses(
    fresh_api, import_env, make_user, files: Receiver, start_worker
) -> None:
    from tests.test_mcp import call, connect, tool_error

    api = fresh_api(import_env)
    user = await make_user("agent", api)
    async with user.client() as client:
        project = await new_project(client)
    async with connect(api.url, user.token) as mcp:
        refused = await tool_error(mcp, "import_from_url", project_id=project, url="http://169.254.169.254/x")
        assert "url_refused" in refused and "link-local" in refused
        asset = await call(mcp, "import_from_url", project_id=project, url=f"{files.url}/media/clip.mp4")
        assert asset["status"] == "importing" and asset["filename"] == "clip.mp4"
    start_worker(import_env)
    assert (await settled(user, asset["id"]))["status"] == "uploaded"
