"""MCP's comment tools through the official Python client against a real server: an agent's comment is
authored as an agent named after its token, reaches an open asset stream at once, and obeys the same
rules and isolation as REST."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from fluxstudio.studio.tokens import create_token
from tests.fixtures.platform import ApiServer, ApiUser, sse_events
from tests.test_api_playback import ffprobe_bytes
from tests.test_mcp import MCP_TOKEN, call, connect, tool_error


@pytest.fixture(scope="module")
def service_api(start_api, api_env: dict[str, str]) -> ApiServer:
    return start_api({**api_env, "MCP_AUTH_TOKEN": MCP_TOKEN})


async def _asset(user: ApiUser, clip: Path) -> str:
    async with user.client() as rest:
        project = (await rest.post("/api/v1/projects", json={"name": "agent review"})).json()["id"]
        created = await rest.post(
            f"/api/v1/projects/{project}/assets?filename=c.mp4", content=clip.read_bytes()
        )
        return created.json()["asset"]["id"]


async def test_an_agents_comment_is_live_and_named_after_its_token(make_user, pool, api_clip: Path) -> None:
    person: ApiUser = await make_user("reviewer")
    _, agent_token = await create_token(pool, "critic-bot", email=person.email)
    asset = await _asset(person, api_clip)
    async with (
        person.client() as rest,
        connect(person.server.url, agent_token) as agent,
        asyncio.timeout(30),
        sse_events(rest, f"/api/v1/assets/{asset}/events") as stream,
    ):
        assert (await anext(stream))[0] == "asset"
        made = await call(agent, "add_comment", asset_id=asset, time_s=1.0, text="the cut is late here")
        assert made["author"]["kind"] == "agent" and made["author"]["name"] == "critic-bot"
        name, data = await asyncio.wait_for(anext(stream), 10)
        assert name == "comment" and data["op"] == "created" and data["comment"]["id"] == made["id"]

        reply = await rest.post(
            f"/api/v1/assets/{asset}/comments",
            json={"time_s": 1.0, "text": "fixed", "parent_id": made["id"]},
        )
        assert reply.status_code == 201
        listed = await call(agent, "list_comments", asset_id=asset)
        assert [c["text"] for c in listed["items"]] == ["the cut is late here", "fixed"]
        resolved = await call(agent, "resolve_comment", comment_id=reply.json()["id"])
        assert resolved["resolved"] is True and resolved["author"]["kind"] == "user"

        assert "time_s" in await tool_error(agent, "add_comment", asset_id=asset, time_s=99.0, text="x")
        # The person may resolve but not rewrite the agent's comment.
        rewrite = await rest.patch(f"/api/v1/comments/{made['id']}", json={"text": "mine now"})
        assert rewrite.status_code == 403


async def test_comment_tools_reach_only_the_callers_assets(make_user, api_clip: Path) -> None:
    owner: ApiUser = await make_user("owner-mcp")
    stranger: ApiUser = await make_user("stranger-mcp")
    asset = await _asset(owner, api_clip)
    async with connect(stranger.server.url, stranger.token) as agent:
        assert "not_found" in await tool_error(agent, "list_comments", asset_id=asset)
        assert "not_found" in await tool_error(agent, "add_comment", asset_id=asset, time_s=0.5, text="x")


async def test_the_mcp_auth_token_comments_as_the_mcp_agent(service_api, pool, api_clip: Path) -> None:
    from fluxstudio.studio.users import DEFAULT_EMAIL

    _, token = await create_token(pool, "local", email=DEFAULT_EMAIL)
    owner = ApiUser(DEFAULT_EMAIL, token, service_api)
    asset = await _asset(owner, api_clip)
    async with connect(service_api.url, MCP_TOKEN) as agent:
        made = await call(
            agent, "add_comment", asset_id=asset, time_s=0.0, text="hello from the service token"
        )
    assert made["author"] == {"id": "mcp", "name": "MCP agent", "kind": "agent"}


async def test_get_frame_shows_the_agent_the_frame_as_a_jpeg(
    make_user, api_clip: Path, tmp_path: Path
) -> None:
    owner: ApiUser = await make_user("frame-owner")
    stranger: ApiUser = await make_user("frame-stranger")
    asset = await _asset(owner, api_clip)
    async with connect(owner.server.url, owner.token) as agent:
        result = await agent.call_tool("get_frame", {"asset_id": asset, "time_s": 0.5, "width": 160})
        assert not result.is_error, result.content
        [image] = [part for part in result.content if part.type == "image"]
        assert image.mime_type == "image/jpeg"
        jpeg = base64.b64decode(image.data)
        assert jpeg[:3] == b"\xff\xd8\xff"  # a JPEG's start of image
        (stream,) = ffprobe_bytes(jpeg, tmp_path, "frame.jpg")
        assert (stream["width"], stream["height"]) == (160, 120)
        assert "time" in await tool_error(agent, "get_frame", asset_id=asset, time_s=9999.0)
    async with connect(stranger.server.url, stranger.token) as agent:
        assert "not_found" in await tool_error(agent, "get_frame", asset_id=asset, time_s=0.5)
