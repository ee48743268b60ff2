"""End to end through real processes: upload over HTTP, a worker process transcodes, the client follows
the SSE stream to `end`, and the playback URL decodes with ffmpeg over HTTP from the API's `/media`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fixtures.media import DEBIAN_FFMPEG, run_ffmpeg
from tests.fixtures.platform import ApiServer, sse_events
from tests.test_api_service import assert_problem

pytestmark = pytest.mark.slow


async def test_upload_transcode_follow_and_play(
    make_user, api: ApiServer, api_env: dict, start_worker, api_clip: Path, media_dir: Path
) -> None:
    start_worker(api_env, "--lease", "10")
    user = await make_user("e2e")
    async with user.client() as client:
        project = (await client.post("/api/v1/projects", json={"name": "e2e"})).json()["id"]
        with api_clip.open("rb") as f:
            upload = await client.post(f"/api/v1/projects/{project}/assets?transcode=true",
                                       files={"file": ("e2e.mp4", f, "video/mp4")})
        assert upload.status_code == 201, upload.text
        asset_id, job_id = upload.json()["asset"]["id"], upload.json()["job"]["id"]

        events = []
        async with asyncio.timeout(120), sse_events(client, f"/api/v1/jobs/{job_id}/events") as stream:
            async for name, data in stream:
                events.append((name, data))
        names = [name for name, _ in events]
        assert names[0] == "status" and names[-1] == "end" and names.count("end") == 1
        assert names.count("playable") == 1 and names.index("playable") < names.index("end")
        final = events[-1][1]
        assert final["status"] == "succeeded" and final["progress"] == 1 and final["id"] == job_id
        progress = [data["progress"] for name, data in events if name == "progress"]
        assert progress == sorted(progress) and all(0 <= p <= 1 for p in progress)
        assert all({"job_id", "progress", "fps", "speed", "out_time_s", "eta_s"} <= data.keys()
                   for name, data in events if name == "progress")

        asset = (await client.get(f"/api/v1/assets/{asset_id}")).json()
        assert asset["status"] == "ready"
        playback = asset["playback_url"]
        assert playback.startswith(f"{api.url}/media/hls/{asset_id}/") and playback.endswith(".m3u8")
        assert asset["renditions"] and all(r["playlist_url"].startswith(api.url) for r in asset["renditions"])
        decoded = await asyncio.to_thread(
            run_ffmpeg, "-i", playback, "-f", "null", "-", "-progress", "pipe:1", ffmpeg=DEBIAN_FFMPEG
        )
        out_us = max(int(line.split("=")[1]) for line in decoded.stdout.splitlines()
                     if line.startswith("out_time_us=") and line.split("=")[1].isdigit())
        assert out_us / 1e6 == pytest.approx(2.0, abs=0.5)

        # a late reader gets `playable` and `end` at once; a finished job cannot be cancelled
        async with asyncio.timeout(10), sse_events(client, f"/api/v1/jobs/{job_id}/events") as stream:
            assert [name async for name, _ in stream] == ["playable", "end"]
        assert_problem(await client.post(f"/api/v1/jobs/{job_id}/cancel"), 409)

        # deleting the asset takes its stream with it
        assert (await client.delete(f"/api/v1/assets/{asset_id}")).status_code == 204
        assert (await client.get(playback)).status_code == 404
        assert_problem(await client.get(f"/api/v1/assets/{asset_id}"), 404)
    assert not (media_dir / "hls" / asset_id).exists() and not (media_dir / "sources" / asset_id).exists()
