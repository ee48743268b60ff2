"""An agent goes from a local file to a playback URL through MCP alone (plus the one `curl` it is given),
seeing progress on the way: the official Python client, a real uvicorn and a real worker process."""

from __future__ import annotations

import asyncio
import itertools
import json
import shlex
from pathlib import Path

import httpx
import pytest

from tests.fixtures.platform import wait_for
from tests.test_mcp import call, connect

pytestmark = pytest.mark.slow

TERMINAL = {"succeeded", "failed", "cancelled"}


async def test_from_a_local_file_to_a_playback_url(
    make_user, api_env: dict, start_worker, api_clip: Path
) -> None:
    user = await make_user("mcp-agent")
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect(user.server.url, user.token) as client, httpx.AsyncClient(timeout=60) as http:
        project = await call(client, "create_project", name="agent work")
        ticket = await call(client, "create_upload", project_id=project["id"], filename=str(api_clip))
        url = ticket["upload_url"]
        assert url.startswith(f"{user.server.url}/api/v1/uploads/upl_") and ticket["transcode"] is False
        assert ticket["curl"] == f"curl -sS -T {shlex.quote(str(api_clip))} {shlex.quote(url)}"

        # What `curl -T` does: a PUT of the raw bytes, with no Authorization header. It works once.
        uploaded = await http.put(url, content=api_clip.read_bytes())
        assert uploaded.status_code == 201, uploaded.text
        asset = uploaded.json()["asset"]
        assert asset["filename"] == api_clip.name and asset["project_id"] == project["id"]
        assert (await http.put(url, content=b"again")).status_code == 410

        job = await call(client, "transcode_asset", asset_id=asset["id"], idempotency_key="agent-1")
        assert job["status"] == "queued" and job["asset_id"] == asset["id"]

        # Wait before any worker runs, so the notifications span queued -> running -> succeeded.
        waiting = asyncio.create_task(client.call_tool(
            "wait_for_job", {"job_id": job["id"], "timeout_s": 40}, progress_callback=on_progress))
        await wait_for(lambda: progress, 15, "the first progress notification")
        start_worker(api_env)
        result = await waiting
        assert not result.is_error, result.content
        final = result.structured_content
        for _ in range(3):  # a slow machine: call again, as an agent would, while it is still running
            if final["status"] in TERMINAL:
                break
            final = await call(client, "wait_for_job", job_id=job["id"], timeout_s=40)
        assert final["status"] == "succeeded" and final["progress"] == 1, final

        values = [value for value, _, _ in progress]
        assert values[0] == 0.0 and values[-1] == 1.0 and len(values) >= 2, progress
        assert all(a < b for a, b in itertools.pairwise(values)), values  # strictly increasing
        assert all(total == 1.0 and message for _, total, message in progress), progress

        playback = await call(client, "get_playback_url", asset_id=asset["id"])
        assert playback["playback_url"].startswith(f"{user.server.url}/media/hls/{asset['id']}/")
        assert playback["renditions"]
        master = await http.get(playback["playback_url"])
        assert master.status_code == 200 and master.text.startswith("#EXTM3U")

        # the resources say the same as the tools
        read = await client.read_resource(f"fluxstudio://assets/{asset['id']}")
        assert json.loads(read.contents[0].text)["playback_url"] == playback["playback_url"]
        again = await call(client, "transcode_asset", asset_id=asset["id"], idempotency_key="agent-1")
        assert again["id"] == job["id"] and again["status"] == "succeeded"
