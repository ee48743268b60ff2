"""The SSE progress stream without a worker: the state from PostgreSQL first, then live events published
through Redis (here a cancel), then `end`, and the server closes the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fixtures.platform import ApiUser, sse_events


async def test_stream_follows_a_cancel_to_the_end(make_user, api_clip: Path) -> None:
    user: ApiUser = await make_user("events")
    async with user.client() as client, user.client() as other:
        project = (await client.post("/api/v1/projects", json={"name": "sse"})).json()["id"]
        asset = (await client.post(f"/api/v1/projects/{project}/assets?filename=s.mp4",
                                   content=api_clip.read_bytes())).json()["asset"]["id"]
        job = (await client.post(f"/api/v1/assets/{asset}/jobs", json={"renditions": ["240p"]})).json()
        seen: list[tuple[str, dict]] = []
        async with asyncio.timeout(30):
            async with sse_events(client, f"/api/v1/jobs/{job['id']}/events") as first_reader, \
                    sse_events(other, f"/api/v1/jobs/{job['id']}/events") as second_reader:
                name, data = await anext(first_reader)
                assert name == "status" and data["id"] == job["id"]
                assert data["status"] in ("queued", "running")
                assert (await anext(second_reader))[0] == "status"
                cancelled = await client.post(f"/api/v1/jobs/{job['id']}/cancel")
                assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
                async for name, data in first_reader:  # ends when the server closes the stream
                    seen.append((name, data))
                assert [name async for name, _ in second_reader][-1] == "end"
    assert seen[-1][0] == "end" and seen[-1][1]["status"] == "cancelled"
    assert [name for name, _ in seen].count("end") == 1
