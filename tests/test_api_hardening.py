"""What the API tells a stranger and whom it believes, against real servers: `/readyz` says status words
only; `/media` gives one 404 for a folder and for nothing; upload and playback URLs come from PUBLIC_URL,
never from the Host header, and ALLOWED_HOSTS refuses other hosts; stored sources are private files;
`GET /mcp` is refused at once instead of held open; idle connections are closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from fluxstudio.commands.serve import SERVER_LIMITS
from fluxstudio.storage import LocalStorage
from tests.fixtures.platform import ApiServer, ApiUser, free_port
from tests.test_api_service import assert_problem
from tests.test_mcp import connect

STATUS_WORDS = {"ok", "down", "not_migrated", "degraded", "unavailable"}


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    return [value]


async def test_readyz_says_status_words_only(start_api, api_env: dict[str, str], tmp_path: Path) -> None:
    socket_path = tmp_path / "secret-socket-dir" / "redis.sock"
    port = free_port()
    servers = [
        start_api({**api_env, "REDIS_URL": f"unix://{socket_path}"}),
        start_api({**api_env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/nowhere"}),
    ]
    for server in servers:
        async with httpx.AsyncClient(base_url=server.url) as client:
            ready = await client.get("/readyz")
        body = ready.json()
        assert body["status"] in ("degraded", "unavailable"), body
        assert set(_leaves(body)) <= STATUS_WORDS, body
        assert "secret-socket-dir" not in ready.text and str(port) not in ready.text
        assert set(body["checks"]) == {"database", "redis"}


async def test_media_gives_one_404_for_a_folder_and_for_nothing(api: ApiServer, media_dir: Path) -> None:
    await LocalStorage(media_dir).put("hls/ast_exists/job_x/master.m3u8", b"#EXTM3U\n")
    async with httpx.AsyncClient(base_url=api.url) as client:
        answers = [
            await client.get(path)
            for path in ("/media/hls/ast_exists", "/media/hls/ast_exists/job_x", "/media/hls/ast_missing")
        ]
        assert (await client.get("/media/hls/ast_exists/job_x/master.m3u8")).status_code == 200
    bodies = [assert_problem(answer, 404) for answer in answers]
    for body in bodies:
        body.pop("request_id")
    assert bodies[0] == bodies[1] == bodies[2]


async def test_urls_come_from_public_url_not_from_the_host_header(
    start_api, api_env: dict[str, str], make_user, pool: asyncpg.Pool
) -> None:
    public = "https://studio.example.com"
    server = start_api({**api_env, "PUBLIC_URL": public + "/"})
    user: ApiUser = await make_user("hosts", server=server)
    evil = {"Host": "evil.example"}
    async with user.client() as client:
        project = (await client.post("/api/v1/projects", json={"name": "p"})).json()["id"]
        ticket = await client.post(
            f"/api/v1/projects/{project}/uploads", json={"filename": "a.mp4"}, headers=evil
        )
        assert ticket.json()["upload_url"].startswith(f"{public}/api/v1/uploads/upl_"), ticket.text
        asset_id = await _ready_asset(pool, project)
        asset = (await client.get(f"/api/v1/assets/{asset_id}", headers=evil)).json()
        assert asset["playback_url"] == f"{public}/media/hls/{asset_id}/job/master.m3u8"
    async with connect(server.url, user.token) as mcp:
        result = await mcp.call_tool("create_upload", {"project_id": project, "filename": "b.mp4"})
        assert result.structured_content["upload_url"].startswith(f"{public}/api/v1/uploads/upl_")
        asset = (await mcp.call_tool("get_asset", {"asset_id": asset_id})).structured_content
        assert asset["playback_url"].startswith(f"{public}/media/")


async def _ready_asset(pool: asyncpg.Pool, project_id: str) -> str:
    """An asset row that is ready to play, without transcoding anything: only its URL is looked at."""
    from fluxstudio.ids import new_id

    asset_id = new_id("ast")
    await pool.execute(
        "INSERT INTO assets (id, project_id, filename, size_bytes, source_key, status, playback_key)"
        " VALUES ($1, $2, 'a.mp4', 1, $3, 'ready', $4)",
        asset_id, project_id, f"sources/{asset_id}/source.mp4", f"hls/{asset_id}/job/master.m3u8",
    )  # fmt: skip
    return asset_id


async def test_allowed_hosts_refuses_other_hosts(start_api, api_env: dict[str, str]) -> None:
    server = start_api({**api_env, "ALLOWED_HOSTS": "127.0.0.1,*.studio.example.com"})
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/healthz", headers={"Host": "eu.studio.example.com"})).status_code == 200
        for host in ("evil.example", "studio.example.com.evil.example", "localhost"):
            refused = await client.get("/api/v1/projects", headers={"Host": host})
            assert refused.status_code == 400, host
    default = start_api(api_env)  # unset: any host, for development
    async with httpx.AsyncClient(base_url=default.url) as client:
        assert (await client.get("/healthz", headers={"Host": "anything.example"})).status_code == 200


async def test_a_stored_source_is_readable_by_its_owner_only(
    api: ApiServer, make_user, media_dir: Path, api_clip: Path
) -> None:
    user: ApiUser = await make_user("modes")
    async with user.client() as client:
        project = (await client.post("/api/v1/projects", json={"name": "p"})).json()["id"]
        upload = await client.post(
            f"/api/v1/projects/{project}/assets?filename=a.mp4", content=api_clip.read_bytes()
        )
        asset_id = upload.json()["asset"]["id"]
    stored = list((media_dir / "sources" / asset_id).iterdir())
    assert stored and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in stored)


async def test_get_mcp_is_refused_at_once_not_held_open(api: ApiServer, make_user) -> None:
    user: ApiUser = await make_user("mcpget")
    headers = {**user.headers, "Accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
        response = await asyncio.wait_for(client.get("/mcp", headers=headers), 10)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    async with connect(api.url, user.token) as mcp:  # the official client copes with the 405
        assert (await mcp.list_tools()).tools


async def test_an_idle_keep_alive_connection_is_closed(api: ApiServer) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                     .split(b":")[1])  # fmt: skip
        assert json.loads(await reader.readexactly(length))["status"] == "ok"
        # Then nothing: the server hangs up within its keep-alive timeout (and a margin for a busy box).
        assert await asyncio.wait_for(reader.read(), SERVER_LIMITS["timeout_keep_alive"] + 10) == b""
    finally:
        writer.close()


async def test_slow_oversized_headers_are_refused(api: ApiServer) -> None:
    """A client trickling headers cannot make the server buffer more than the h11 limit."""
    host, port = api.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    limit = SERVER_LIMITS["h11_max_incomplete_event_size"]
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Padding: ".encode())
        answer = b""
        for _ in range(limit // 1024 + 8):
            writer.write(b"a" * 1024)
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(65536), 0.05)
            if answer:
                break
        if not answer:
            answer = await asyncio.wait_for(reader.read(65536), 10)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:100]
    except (ConnectionResetError, BrokenPipeError):
        pass  # cut off: refused too
    finally:
        writer.close()
