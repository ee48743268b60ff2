"""Input never makes a 500: malformed ids (a NUL byte, junk) on every route of the table and every MCP tool,
and JSON nested far deeper than the size limit would suggest, on every JSON route and on /mcp.

The routes are read from the route table, so a route added later is covered without editing this file.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from fluxstudio.api.bodies import JSON_BODY_MAX
from fluxstudio.api.routes import API_OPERATIONS, SERVICE_OPERATIONS
from fluxstudio.api.routing import Operation
from fluxstudio.ids import PREFIX_OF_PARAM, new_id
from tests.fixtures.platform import ApiUser
from tests.test_api_service import assert_problem
from tests.test_mcp import INITIALIZE, MCP_ACCEPT, connect

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
#: A real id with a NUL in it, a NUL alone, and junk of the wrong shape (percent-encoded in the path).
BAD_IDS = ("%00", "ast_%00", "prj_ABCDEFGHIJKLMNOPQRSTU%00", "x" * 300, "prj_" + "a" * 22 + "%0a")
DEPTH = 30_000
#: Tool arguments other than ids.
ARGUMENTS: dict[str, Any] = {"name": "p", "filename": "a.mp4", "time_s": 1.0, "text": "t"}


def _id_operations() -> list[Operation]:
    return [
        op
        for op in (*API_OPERATIONS, *SERVICE_OPERATIONS)
        if any(name.endswith("_id") for name in _PARAM.findall(op.path))
    ]


def _fill(path: str, bad: str | None = None) -> str:
    """The path with each `{x_id}` replaced by `bad` (or a well-formed unknown id), other params by junk."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        if name.endswith("_id"):
            return bad if bad is not None else new_id(PREFIX_OF_PARAM.get(name, "zz"))
        return "anything"

    return _PARAM.sub(value, path)


def _request_kwargs(op: Operation) -> dict[str, Any]:
    if op.body is not None:
        return {"json": {}}
    if op.body_content is not None:
        return {"content": b"not media", "headers": {"content-type": "application/octet-stream"}}
    return {}


def test_the_route_table_has_id_routes() -> None:
    assert len(_id_operations()) >= 10  # the 10 that crashed (the 11th was a query filter); more later


@pytest.mark.parametrize("op", _id_operations(), ids=lambda op: f"{op.method} {op.path}")
async def test_a_malformed_id_is_404_on_every_route(op: Operation, make_user) -> None:
    user: ApiUser = await make_user("ids")
    async with user.client() as client:
        for bad in BAD_IDS:
            response = await client.request(op.method, _fill(op.path, bad), **_request_kwargs(op))
            if op.method == "HEAD":  # tus's HEAD: a status, never a body
                assert response.status_code == 404
                continue
            body = assert_problem(response, 404)
            assert body["code"] == "not_found", (op.path, bad, body)
            assert "asyncpg" not in response.text and "\x00" not in body["detail"]


async def test_a_malformed_id_in_a_query_filter_is_422(make_user) -> None:
    user: ApiUser = await make_user("ids")
    async with user.client() as client:
        for bad in ("\x00", "ast_\x00", "job_" + "a" * 22):
            body = assert_problem(await client.get("/api/v1/jobs", params={"asset_id": bad}), 422)
            assert "asset_id" in body["detail"]
        assert (await client.get("/api/v1/jobs", params={"asset_id": new_id("ast")})).json()["items"] == []


def _json_operations() -> list[Operation]:
    return [op for op in API_OPERATIONS if op.body is not None]


@pytest.mark.parametrize("op", _json_operations(), ids=lambda op: f"{op.method} {op.path}")
async def test_deeply_nested_json_is_400_on_every_json_route(op: Operation, make_user) -> None:
    user: ApiUser = await make_user("deep")
    nested = "[" * DEPTH + "]" * DEPTH
    objects = '{"a":' * (DEPTH // 3) + "1" + "}" * (DEPTH // 3)
    brackets_in_strings = '{"name": "' + "[" * 1000 + '"}'  # not nesting: must not be refused for depth
    assert len(nested) < JSON_BODY_MAX and len(objects) < JSON_BODY_MAX
    async with user.client() as client:
        for raw in (nested, objects, f'{{"name": {nested}}}'):
            response = await client.request(
                op.method, _fill(op.path), content=raw, headers={"content-type": "application/json"}
            )
            body = assert_problem(response, 400)
            assert body["code"] == "malformed_request" and "deeper" in body["detail"], body
        response = await client.request(
            op.method,
            _fill(op.path),
            content=brackets_in_strings,
            headers={"content-type": "application/json"},
        )
        assert response.status_code != 500 and "deeper" not in response.text


async def test_deeply_nested_json_to_mcp_is_refused_without_a_crash(make_user) -> None:
    user: ApiUser = await make_user("deep")
    nested = "[" * DEPTH + "]" * DEPTH
    async with httpx.AsyncClient(base_url=user.server.url, timeout=30) as client:
        headers = {**MCP_ACCEPT, **user.headers}
        assert (await client.post("/mcp", json=INITIALIZE, headers=headers)).status_code == 200
        for raw in (nested, '{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ' + nested + "}"):
            response = await client.post("/mcp", content=raw, headers=headers)
            assert 400 <= response.status_code < 500 or response.status_code == 200, response.status_code
            assert response.status_code != 500


async def test_every_mcp_tool_refuses_a_malformed_id_as_not_found(make_user) -> None:
    user: ApiUser = await make_user("ids")
    async with connect(user.server.url, user.token) as client:
        tools = (await client.list_tools()).tools
        with_ids = [t for t in tools if any(name.endswith("_id") for name in t.input_schema["properties"])]
        assert {t.name for t in with_ids} >= {"get_asset", "get_job", "list_assets", "cancel_job"}
        for tool in with_ids:
            for bad in ("ast_\x00", "\x00", "job_" + "A" * 21 + "\x00"):
                arguments = {
                    name: bad if name.endswith("_id") else ARGUMENTS.get(name, "x")
                    for name in tool.input_schema.get("required", [])
                }
                result = await client.call_tool(tool.name, arguments)
                text = " ".join(getattr(part, "text", "") for part in result.content)
                assert result.is_error, (tool.name, text)
                assert "not_found:" in text and "has this id" in text, (tool.name, text)
