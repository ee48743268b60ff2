"""MCP at `/mcp` through real clients over HTTP against a real uvicorn: the official Python SDK client (both
its protocol eras), plain httpx for what a client library hides (status codes, redirects, headers), and
the official TypeScript SDK under node. The whole agent flow, with a worker process, is in
`test_mcp_flow.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult

from fluxstudio.studio.users import DEFAULT_EMAIL
from tests.fixtures.platform import ApiServer, ApiUser

SPEC_TOOLS = [
    "list_projects", "create_project", "list_assets", "get_asset", "create_upload", "transcode_asset",
    "get_job", "wait_for_job", "cancel_job", "get_playback_url", "import_from_url", "list_comments",
    "add_comment", "resolve_comment", "get_frame",
]  # fmt: skip
READ_ONLY = {"list_projects", "list_assets", "get_asset", "get_job", "wait_for_job", "get_playback_url",
             "list_comments", "get_frame"}
MCP_TOKEN = "mcp-service-token-0123456789abcdef"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "httpx", "version": "0"}},
}  # fmt: skip
MCP_ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def connect(url: str, token: str | None, **options: Any) -> AsyncIterator[Client]:
    """The official Python client on `{url}/mcp`, with the token as `Authorization: Bearer`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url + "/mcp", http_client=http), **options) as client,
    ):
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured output; fails the test on a tool error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content


async def tool_error(client: Client, tool: str, **arguments: Any) -> str:
    """The message of a tool error, after the SDK's `Error executing tool NAME: ` prefix."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    prefix = f"Error executing tool {tool}: "
    assert _text(result).startswith(prefix), _text(result)
    return _text(result).removeprefix(prefix)


def _messages(exc: BaseException) -> str:
    return " | ".join([repr(exc), *(_messages(inner) for inner in getattr(exc, "exceptions", ()))])


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(part, "text", "") for part in result.content)


@pytest.fixture(scope="module")
def mcp_api(start_api, api_env: dict[str, str]) -> ApiServer:
    """A server with MCP_AUTH_TOKEN set (the session's `api` has none)."""
    return start_api({**api_env, "MCP_AUTH_TOKEN": MCP_TOKEN})


async def upload_with_job(user: ApiUser, clip: Path) -> tuple[str, str, str]:
    """Over REST: a project, an asset and its queued job (no worker runs here) -> their ids."""
    async with user.client() as rest:
        project = (await rest.post("/api/v1/projects", json={"name": "private"})).json()["id"]
        answer = await rest.post(f"/api/v1/projects/{project}/assets?transcode=true&filename=clip.mp4",
                                 content=clip.read_bytes())
        assert answer.status_code == 201, answer.text
        return project, answer.json()["asset"]["id"], answer.json()["job"]["id"]


def test_the_sdk_is_not_shadowed_by_our_package() -> None:
    import mcp

    import fluxstudio.mcp

    assert "site-packages" in mcp.__file__ and fluxstudio.mcp.__name__ == "fluxstudio.mcp"
    assert fluxstudio.mcp is not mcp


async def test_lists_tools_and_resources_with_schemas_and_annotations(make_user) -> None:
    user = await make_user("mcp-list")
    async with connect(user.server.url, user.token) as client:
        assert client.protocol_version == "2026-07-28"  # the SDK's default; the legacy era is tested below
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        templates = (await client.list_resource_templates()).resource_templates
    assert sorted(tools) == sorted(SPEC_TOOLS)
    for name, tool in tools.items():
        if name == "get_frame":  # its result is image content (a JPEG), not structured output
            assert tool.output_schema is None
        else:
            assert tool.output_schema and tool.output_schema["type"] == "object", name
        assert tool.description and tool.annotations is not None, name
        assert tool.annotations.read_only_hint is (name in READ_ONLY), name
        destructive = True if name == "cancel_job" else None if name in READ_ONLY else False
        assert tool.annotations.destructive_hint is destructive, name
    assert set(tools["wait_for_job"].input_schema["properties"]) == {"job_id", "timeout_s"}
    assert tools["wait_for_job"].input_schema["properties"]["timeout_s"]["maximum"] == 45
    assert {"id", "status", "progress"} <= set(tools["get_job"].output_schema["properties"])
    assert {t.uri_template for t in templates} == {"fluxstudio://assets/{asset_id}", "fluxstudio://jobs/{job_id}"}


async def test_post_mcp_is_served_in_place_on_any_host(make_user) -> None:
    user = await make_user("mcp-post")
    async with httpx.AsyncClient(base_url=user.server.url, follow_redirects=False) as http:
        for host in (None, "media.example.com"):
            headers = {**MCP_ACCEPT, **user.headers, **({"Host": host} if host else {})}
            answer = await http.post("/mcp", json=INITIALIZE, headers=headers)
            assert answer.status_code == 200, (host, answer.status_code, answer.text)
            assert "mcp-session-id" not in answer.headers  # stateless: any replica can answer the next call
            assert '"serverInfo"' in answer.text and '"fluxstudio"' in answer.text


async def test_401_without_a_valid_token_and_no_oauth_discovery(make_user, pool: asyncpg.Pool) -> None:
    user = await make_user("mcp-401")
    revoked = await make_user("mcp-revoked")
    await pool.execute("UPDATE api_tokens t SET revoked_at = now() FROM users u"
                       " WHERE u.id = t.user_id AND u.email = $1", revoked.email)
    async with httpx.AsyncClient(base_url=user.server.url, follow_redirects=False) as http:
        # (this server has no MCP_AUTH_TOKEN, so that one is just another wrong token)
        for auth in ({}, {"Authorization": "Bearer fs_not-a-token"}, {"Authorization": user.token},
                     revoked.headers, {"Authorization": f"Bearer {MCP_TOKEN}"}):
            answer = await http.post("/mcp", json=INITIALIZE, headers={**MCP_ACCEPT, **auth})
            assert answer.status_code == 401, (auth, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer ")
            assert "resource_metadata" not in answer.headers["www-authenticate"]
        for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
                     "/.well-known/oauth-authorization-server", "/register", "/authorize"):
            assert (await http.get(path)).status_code == 404, path
    # The SDK client gets no further (it reports the 401 as an error response, in an exception group).
    with pytest.raises(BaseException) as raised:
        async with connect(user.server.url, "fs_not-a-token") as client:
            await client.list_tools()
    assert "MCPError" in _messages(raised.value), _messages(raised.value)


async def test_another_users_objects_are_unreachable(make_user, api_clip: Path) -> None:
    owner, stranger = await make_user("mcp-owner"), await make_user("mcp-stranger")
    project, asset, job = await upload_with_job(owner, api_clip)
    async with connect(stranger.server.url, stranger.token) as client:
        for tool, arguments in [
            ("get_job", {"job_id": job}), ("wait_for_job", {"job_id": job, "timeout_s": 1}),
            ("cancel_job", {"job_id": job}), ("get_asset", {"asset_id": asset}),
            ("transcode_asset", {"asset_id": asset}), ("get_playback_url", {"asset_id": asset}),
            ("list_assets", {"project_id": project}),
            ("create_upload", {"project_id": project, "filename": "x.mp4"}),
        ]:  # fmt: skip
            assert (await tool_error(client, tool, **arguments)).startswith("not_found:"), tool
        assert project not in {p["id"] for p in (await call(client, "list_projects"))["items"]}
        for uri in (f"fluxstudio://jobs/{job}", f"fluxstudio://assets/{asset}"):
            with pytest.raises(Exception, match="not_found"):
                await client.read_resource(uri)
    async with connect(owner.server.url, owner.token) as client:  # untouched, and the owner reaches it
        assert (await call(client, "get_job", job_id=job))["status"] == "queued"
        contents = (await client.read_resource(f"fluxstudio://jobs/{job}")).contents
        assert json.loads(contents[0].text)["id"] == job and contents[0].mime_type == "application/json"
        cancelled = await call(client, "cancel_job", job_id=job)
        assert cancelled["status"] == "cancelled"
        assert (await tool_error(client, "cancel_job", job_id=job)).startswith("conflict:")


async def test_tool_errors_say_what_is_wrong(make_user, api_clip: Path) -> None:
    user = await make_user("mcp-errors")
    _, asset, job = await upload_with_job(user, api_clip)
    async with connect(user.server.url, user.token) as client:
        assert "999p" in await tool_error(client, "transcode_asset", asset_id=asset, renditions=["999p"])
        assert (await tool_error(client, "create_project", name="   ")).startswith("invalid:")
        assert "timeout_s" in await tool_error(client, "wait_for_job", job_id=job, timeout_s=100)
        not_ready = await tool_error(client, "get_playback_url", asset_id=asset)
        assert not_ready.startswith("not_ready:") and "wait_for_job" in not_ready
        # the same idempotency key gives the same job; with other options it is a conflict
        options = {"asset_id": asset, "renditions": ["240p"], "idempotency_key": "k1"}
        first, again = [await call(client, "transcode_asset", **options) for _ in range(2)]
        assert first["id"] == again["id"] != job and first["status"] == "queued"
        assert (await tool_error(client, "transcode_asset", asset_id=asset, idempotency_key="k1")).startswith(
            "conflict:")
        for queued in (job, first["id"]):
            await call(client, "cancel_job", job_id=queued)


async def test_wait_for_job_times_out_with_the_job_as_it_stands_on_the_legacy_protocol(
    make_user, api_clip: Path
) -> None:
    """The handshake-era stateless path (what most clients speak today) carries progress notifications."""
    user = await make_user("mcp-legacy")
    _, _, job = await upload_with_job(user, api_clip)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connect(user.server.url, user.token, mode="legacy") as client:
        assert client.protocol_version < "2026"
        result = await client.call_tool("wait_for_job", {"job_id": job, "timeout_s": 0.5},
                                        progress_callback=on_progress)
        assert not result.is_error and result.structured_content["status"] == "queued"
        assert seen == [(0.0, 1.0, "queued")]
        await call(client, "cancel_job", job_id=job)


async def test_mcp_auth_token_acts_as_the_local_user_on_mcp_only(
    mcp_api: ApiServer, pool: asyncpg.Pool
) -> None:
    async with connect(mcp_api.url, MCP_TOKEN) as client:
        project = await call(client, "create_project", name="made by an agent")
        assert project["id"] in {p["id"] for p in (await call(client, "list_projects"))["items"]}
    owner = await pool.fetchval("SELECT u.email FROM projects p JOIN users u ON u.id = p.user_id"
                                " WHERE p.id = $1", project["id"])
    assert owner == DEFAULT_EMAIL
    async with httpx.AsyncClient(base_url=mcp_api.url) as http:
        answer = await http.get("/api/v1/projects", headers={"Authorization": f"Bearer {MCP_TOKEN}"})
        assert answer.status_code == 401


async def test_the_typescript_sdk_lists_and_calls_tools(make_user, js_clients: Path) -> None:
    user = await make_user("mcp-node")
    # A thread, not an asyncio subprocess: see js_client in tests/test_collab_support.py.
    node = await asyncio.to_thread(
        subprocess.run,
        ["node", str(js_clients / "mcp_client.mjs"), user.server.url, user.token],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert node.returncode == 0, node.stderr[-2000:]
    seen = json.loads(node.stdout.strip().splitlines()[-1])
    assert seen["sessionId"] is None  # stateless
    assert sorted(seen["tools"]) == sorted(SPEC_TOOLS)
    assert not seen["createdIsError"] and seen["created"]["name"] == "from node"
    assert seen["created"]["id"] in {project["id"] for project in seen["listed"]["items"]}
    assert seen["failed"]["isError"] and "not_found" in seen["failed"]["text"]
