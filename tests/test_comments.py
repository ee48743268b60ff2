"""Comments over REST (API.md section 8) against a real server: the rules, the isolation between users,
and the asset's event stream fanned out across two API replicas through Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.platform import ApiUser, sse_events

SHAPE = {"type": "rect", "points": [[0.1, 0.1], [0.5, 0.4]], "color": "#ff0000", "width": 0.005}


async def _asset(client: Any, clip: Path) -> str:
    project = (await client.post("/api/v1/projects", json={"name": "review"})).json()["id"]
    created = await client.post(
        f"/api/v1/projects/{project}/assets?filename=c.mp4", content=clip.read_bytes()
    )
    assert created.status_code == 201, created.text
    return created.json()["asset"]["id"]


def _field(response: Any) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    return ".".join(body["errors"][0]["loc"][1:])


async def test_comments_rules_and_order(make_user, api_clip: Path) -> None:
    user: ApiUser = await make_user("critic")
    async with user.client() as client:
        asset = await _asset(client, api_clip)
        url = f"/api/v1/assets/{asset}/comments"
        late = await client.post(url, json={"time_s": 1.5, "text": "late", "duration_s": 0.4})
        assert late.status_code == 201, late.text
        early = await client.post(
            url, json={"time_s": 0.5, "text": "early", "annotation": {"shapes": [SHAPE]}}
        )
        assert early.status_code == 201
        comment = early.json()
        assert comment["author"]["kind"] == "user" and comment["author"]["name"].startswith("critic-")
        assert comment["annotation"]["shapes"][0]["points"] == [[0.1, 0.1], [0.5, 0.4]]
        assert comment["resolved"] is False and comment["parent_id"] is None
        reply = await client.post(url, json={"time_s": 0.5, "text": "agreed", "parent_id": comment["id"]})
        assert reply.status_code == 201 and reply.json()["parent_id"] == comment["id"]

        listed = (await client.get(url)).json()["items"]
        assert [c["text"] for c in listed] == ["early", "agreed", "late"]

        assert _field(await client.post(url, json={"time_s": 2.5, "text": "x"})) == "time_s"
        assert _field(await client.post(url, json={"time_s": -1, "text": "x"})) == "time_s"
        assert (
            _field(await client.post(url, json={"time_s": 1, "text": "x", "duration_s": 0})) == "duration_s"
        )
        assert _field(await client.post(url, json={"time_s": 1, "text": "   "})) == "text"
        assert _field(await client.post(url, json={"time_s": 1, "text": "x" * 10_001})) == "text"
        off = {**SHAPE, "points": [[0.1, 1.5]]}
        assert _field(
            await client.post(url, json={"time_s": 1, "text": "x", "annotation": {"shapes": [off]}})
        ).startswith("annotation.shapes.0.points")
        many = {"shapes": [{**SHAPE, "points": [[0.5, 0.5]] * 30}] * 100}
        assert (
            _field(await client.post(url, json={"time_s": 1, "text": "x", "annotation": many}))
            == "annotation"
        )
        nested = {"time_s": 1, "text": "x", "parent_id": reply.json()["id"]}
        assert _field(await client.post(url, json=nested)) == "parent_id"
        other_asset = await _asset(client, api_clip)
        foreign_parent = {"time_s": 1, "text": "x", "parent_id": comment["id"]}
        assert (
            _field(await client.post(f"/api/v1/assets/{other_asset}/comments", json=foreign_parent))
            == "parent_id"
        )

        edited = await client.patch(f"/api/v1/comments/{comment['id']}", json={"text": "early, edited"})
        assert edited.status_code == 200 and edited.json()["text"] == "early, edited"
        resolved = await client.patch(f"/api/v1/comments/{comment['id']}", json={"resolved": True})
        assert resolved.json()["resolved"] is True and resolved.json()["text"] == "early, edited"

        assert (await client.delete(f"/api/v1/comments/{comment['id']}")).status_code == 204
        left = (await client.get(url)).json()["items"]
        assert [c["text"] for c in left] == ["late"]  # the reply went with its parent


async def test_another_users_asset_and_comment_are_404(make_user, api_clip: Path, pool) -> None:
    owner: ApiUser = await make_user("owner")
    stranger: ApiUser = await make_user("stranger")
    async with owner.client() as mine, stranger.client() as theirs:
        asset = await _asset(mine, api_clip)
        comment = (
            await mine.post(f"/api/v1/assets/{asset}/comments", json={"time_s": 1, "text": "mine"})
        ).json()
        for response in (
            await theirs.get(f"/api/v1/assets/{asset}/comments"),
            await theirs.post(f"/api/v1/assets/{asset}/comments", json={"time_s": 1, "text": "x"}),
            await theirs.patch(f"/api/v1/comments/{comment['id']}", json={"resolved": True}),
            await theirs.delete(f"/api/v1/comments/{comment['id']}"),
            await theirs.get(f"/api/v1/assets/{asset}/events"),
        ):
            assert response.status_code == 404, response.text
        # Someone who sees the asset but did not write the comment (an agent, here another author id)
        # may resolve it but not rewrite or delete it.
        await pool.execute(
            "UPDATE comments SET author_id = 'tok_agent', author_kind = 'agent' WHERE id = $1", comment["id"]
        )
        assert (await mine.patch(f"/api/v1/comments/{comment['id']}", json={"text": "no"})).status_code == 403
        assert (await mine.delete(f"/api/v1/comments/{comment['id']}")).status_code == 403
        assert (
            await mine.patch(f"/api/v1/comments/{comment['id']}", json={"resolved": True})
        ).status_code == 200


async def test_comment_events_fan_out_across_two_replicas(
    make_user, api_clip: Path, start_api, api_env
) -> None:
    second = start_api(api_env)
    user: ApiUser = await make_user("fanout")
    other = ApiUser(user.email, user.token, second)
    async with user.client() as one, other.client() as two:
        asset = await _asset(one, api_clip)
        async with asyncio.timeout(30):
            async with (
                sse_events(one, f"/api/v1/assets/{asset}/events") as here,
                sse_events(two, f"/api/v1/assets/{asset}/events") as there,
            ):
                first = [await anext(here), await anext(there)]
                assert [name for name, _ in first] == ["asset", "asset"]
                assert first[0][1]["id"] == asset and first[0][1]["status"] == "uploaded"
                made = (
                    await two.post(
                        f"/api/v1/assets/{asset}/comments", json={"time_s": 0.25, "text": "from replica two"}
                    )
                ).json()
                for stream in (here, there):
                    name, data = await asyncio.wait_for(anext(stream), 10)
                    assert name == "comment" and data["op"] == "created"
                    assert data["comment"] == made
                await one.patch(f"/api/v1/comments/{made['id']}", json={"resolved": True})
                for stream in (here, there):
                    name, data = await asyncio.wait_for(anext(stream), 10)
                    assert (name, data["op"], data["comment"]["resolved"]) == ("comment", "updated", True)
                await one.delete(f"/api/v1/comments/{made['id']}")
                for stream in (here, there):
                    name, data = await asyncio.wait_for(anext(stream), 10)
                    assert (name, data["op"]) == ("comment", "deleted")
                    assert data["comment"] == {"id": made["id"], "asset_id": asset}


@pytest.mark.slow
async def test_asset_stream_carries_progress_and_status_to_ready(
    make_user, api_clip: Path, api_env, start_worker
) -> None:
    user: ApiUser = await make_user("watcher")
    async with user.client() as client:
        asset = await _asset(client, api_clip)
        async with asyncio.timeout(120):
            async with sse_events(client, f"/api/v1/assets/{asset}/events") as stream:
                assert (await anext(stream))[0] == "asset"
                job = await client.post(f"/api/v1/assets/{asset}/jobs", json={"renditions": ["240p"]})
                assert job.status_code == 202
                start_worker(api_env)
                seen: list[str] = []
                async for name, data in stream:
                    seen.append(name)
                    if name == "asset" and data["status"] == "ready":
                        assert data["playback_url"]
                        break
                assert "progress" in seen and seen.count("asset") >= 1
