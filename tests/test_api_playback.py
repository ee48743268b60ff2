"""Playback through real processes (API.md section 7): watch while transcoding, posters, storyboards and
MP4 over `/media`, frames on demand, CORS, signed playback on local storage, MCP's view of it all."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.fixtures.media import make_clip_in
from tests.fixtures.platform import ApiServer, ApiUser, sse_events
from tests.test_api_service import assert_problem

pytestmark = pytest.mark.slow

SIGNING_KEY = "test-playback-signing-key-0123456789abcdef"
PAGE_ORIGIN = "http://127.0.0.1:9"  # an origin that is allowed; nothing listens there


@pytest.fixture(scope="module")
def playback_env(api_env: dict[str, str]) -> dict[str, str]:
    return {
        **api_env,
        "PLAYBACK_SIGNING_KEY": SIGNING_KEY,
        "CORS_ORIGINS": f"{PAGE_ORIGIN},https://app.example",
    }


@pytest.fixture(scope="module")
def playback_api(start_api, playback_env: dict[str, str]) -> ApiServer:
    return start_api(playback_env)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("playback-clips")


async def upload(
    client: httpx.AsyncClient, clip: Path, *, transcode: dict | None = None
) -> tuple[str, str | None]:
    project = (await client.post("/api/v1/projects", json={"name": "playback"})).json()["id"]
    created = await client.post(
        f"/api/v1/projects/{project}/assets?filename={clip.name}", content=clip.read_bytes()
    )
    assert created.status_code == 201, created.text
    asset_id = created.json()["asset"]["id"]
    if transcode is None:
        return asset_id, None
    job = await client.post(f"/api/v1/assets/{asset_id}/jobs", json=transcode)
    assert job.status_code == 202, job.text
    return asset_id, job.json()["id"]


async def follow(
    client: httpx.AsyncClient, job_id: str, on: dict[str, Any] | None = None
) -> list[tuple[str, Any]]:
    """Every event of the job's stream until `end`; `on[name]` (a coroutine function) runs at that event."""
    events = []
    async with asyncio.timeout(240), sse_events(client, f"/api/v1/jobs/{job_id}/events") as stream:
        async for name, data in stream:
            events.append((name, data))
            if on and name in on:
                await on[name](data)
    return events


def ffprobe_bytes(data: bytes, tmp: Path, name: str) -> list[dict]:
    path = tmp / name
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", str(path)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout)["streams"]


# -- watch while transcoding, extras ------------------------------------------------------------------


async def test_playable_while_transcoding_then_extras(
    make_user, playback_api: ApiServer, playback_env: dict, start_worker, clips: Path, tmp_path: Path
) -> None:
    # A slow preset, so the job is still running when its stream becomes playable.
    start_worker({**playback_env, "FFMPEG_PRESET": "slower"}, "--lease", "10")
    clip = make_clip_in(clips, "watch", size="640x360", duration=16, fps=30)
    user: ApiUser = await make_user("watch", server=playback_api)
    seen: dict[str, Any] = {}
    async with user.client() as client:
        asset_id, job_id = await upload(client, clip, transcode={"mp4": True, "renditions": ["360p", "240p"]})
        assert job_id is not None

        async def at_playable(data: dict) -> None:
            seen["asset"] = (await client.get(f"/api/v1/assets/{asset_id}")).json()
            seen["job"] = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            master = await client.get(data["playback_url"])
            variant = master.text.splitlines()[-1]
            seen["media"] = (await client.get(urljoin(data["playback_url"], variant))).text
            seen["event"] = data

        events = await follow(client, job_id, {"playable": at_playable})
        names = [name for name, _ in events]
        assert names.count("playable") == 1 and names.index("playable") < names.index("end")
        assert events[-1][1]["status"] == "succeeded"
        asset, event = seen["asset"], seen["event"]
        assert event == {"job_id": job_id, "playback_url": asset["playback_url"]}
        assert asset["playable"] is True and asset["playback_url"].endswith("master.m3u8")
        # still growing: an EVENT playlist without its end, while the job runs
        assert seen["job"]["status"] == "running" and asset["status"] == "processing"
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in seen["media"] and "#EXT-X-ENDLIST" not in seen["media"]

        ready = (await client.get(f"/api/v1/assets/{asset_id}")).json()
        assert ready["status"] == "ready" and ready["playable"] and ready["playback_policy"] == "public"
        media = await client.get(ready["renditions"][0]["playlist_url"])
        assert media.text.rstrip().endswith("#EXT-X-ENDLIST")
        for field, content_type in (("poster_url", "image/jpeg"), ("storyboard_url", "text/vtt"),
                                    ("mp4_url", "video/mp4")):  # fmt: skip
            got = await client.get(ready[field], headers={"Origin": "https://anywhere.example"})
            assert got.status_code == 200 and got.headers["content-type"].startswith(content_type)
            assert got.headers["access-control-allow-origin"] == "*"
        vtt = (await client.get(ready["storyboard_url"])).text
        sprite_url = urljoin(ready["storyboard_url"], vtt.splitlines()[3].split("#")[0])
        sprite = ffprobe_bytes((await client.get(sprite_url)).content, tmp_path, "sprite.jpg")
        assert sprite[0]["width"] == 160 * 8  # 16 s, a tile every 2 s
        mp4 = ffprobe_bytes((await client.get(ready["mp4_url"])).content, tmp_path, "d.mp4")
        assert sorted(s["codec_name"] for s in mp4) == ["aac", "h264"]
        assert max(s["height"] for s in mp4 if s["codec_type"] == "video") == 360


async def test_a_cancelled_job_takes_its_partial_stream_down(
    make_user, playback_api: ApiServer, playback_env: dict, start_worker, clips: Path
) -> None:
    start_worker({**playback_env, "FFMPEG_PRESET": "veryslow"}, "--lease", "10")
    clip = make_clip_in(clips, "long", size="640x360", duration=60, fps=30)
    user = await make_user("takedown", server=playback_api)
    async with user.client() as client:
        asset_id, job_id = await upload(client, clip, transcode={"renditions": ["360p"]})
        urls: dict[str, str] = {}

        async def cancel(data: dict) -> None:
            urls["master"] = data["playback_url"]
            assert (await client.get(urls["master"])).status_code == 200
            assert (await client.post(f"/api/v1/jobs/{job_id}/cancel")).status_code == 202

        events = await follow(client, job_id, {"playable": cancel})
        assert events[-1][1]["status"] == "cancelled"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the worker removes the output once ffmpeg is stopped
            gone = (await client.get(urls["master"])).status_code == 404
            asset = (await client.get(f"/api/v1/assets/{asset_id}")).json()
            if gone and asset["playback_url"] is None:
                break
            await asyncio.sleep(0.2)
        assert gone and asset["playback_url"] is None and asset["playable"] is False
        assert asset["status"] == "uploaded"


# -- frames on demand -----------------------------------------------------------------------------


async def test_thumbnails(
    make_user, playback_api: ApiServer, clips: Path, tmp_path: Path, media_dir: Path
) -> None:
    clip = make_clip_in(clips, "thumbs", size="320x240", duration=3, fps=25)
    voice = make_clip_in(clips, "voice", video=False, duration=2, container="wav")
    user = await make_user("thumbs", server=playback_api)
    other = await make_user("other", server=playback_api)
    async with user.client() as client, other.client() as stranger:
        asset_id, _ = await upload(client, clip)
        audio_id, _ = await upload(client, voice)
        path = f"/api/v1/assets/{asset_id}/thumbnail"
        got = await client.get(path, params={"time": "1.5", "width": "200"})
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        (stream,) = ffprobe_bytes(got.content, tmp_path, "t.jpg")
        assert (stream["width"], stream["height"]) == (200, 150)
        cached = list((media_dir / "sources" / asset_id / "thumbnails").glob("*.jpg"))
        assert [p.name for p in cached] == ["37-200.jpg"]  # frame 37 of 25 fps at 1.5 s
        again = await client.get(path, params={"time": "1.51", "width": "200"})  # the same frame: cached
        assert again.content == got.content
        default = await client.get(path)
        assert ffprobe_bytes(default.content, tmp_path, "d.jpg")[0]["width"] == 320  # 640, capped
        for params in ({"time": "3"}, {"time": "-1"}, {"time": "nan"}, {"time": "x"}, {"width": "8"},
                       {"width": "1.5"}):  # fmt: skip
            assert_problem(await client.get(path, params=params), 422)
        assert_problem(await client.get(f"/api/v1/assets/{audio_id}/thumbnail"), 409)
        assert_problem(await stranger.get(path), 404)


# -- CORS -----------------------------------------------------------------------------------------


async def test_cors_for_media_and_the_api(playback_api: ApiServer, api: ApiServer, make_user) -> None:
    user = await make_user("cors", server=playback_api)
    async with httpx.AsyncClient(base_url=playback_api.url) as client:
        pre = await client.options("/media/hls/x/y/master.m3u8", headers={
            "Origin": "https://player.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range"})  # fmt: skip
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
        assert "GET" in pre.headers["access-control-allow-methods"]
        assert "range" in pre.headers["access-control-allow-headers"].lower()

        def preflight(origin: str, headers: str) -> Any:
            return client.options("/api/v1/projects", headers={
                "Origin": origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": headers})  # fmt: skip

        asked = "authorization,content-type,idempotency-key,tus-resumable,upload-length,upload-offset"
        allowed = await preflight(PAGE_ORIGIN, asked)
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == PAGE_ORIGIN
        granted = allowed.headers["access-control-allow-headers"].lower()
        assert set(asked.split(",")) <= {h.strip() for h in granted.split(",")}
        refused = await preflight("https://evil.example", "authorization")
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
        listed = await client.get("/api/v1/projects", headers={**user.headers, "Origin": PAGE_ORIGIN})
        assert listed.headers["access-control-allow-origin"] == PAGE_ORIGIN
        exposed = {h.strip().lower() for h in listed.headers["access-control-expose-headers"].split(",")}
        assert {
            "location",
            "content-range",
            "asset-id",
            "job-id",
            "upload-offset",
            "tus-resumable",
        } <= exposed
        assert (
            "access-control-allow-origin"
            not in (await client.get("/healthz", headers={"Origin": PAGE_ORIGIN})).headers
        )
    async with httpx.AsyncClient(base_url=api.url) as client:  # no CORS_ORIGINS: no CORS for the API
        plain = await client.options("/api/v1/projects", headers={
            "Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "GET"})  # fmt: skip
        assert "access-control-allow-origin" not in plain.headers


# -- signed playback --------------------------------------------------------------------------------


async def ready_asset(client: httpx.AsyncClient, clip: Path, options: dict | None = None) -> dict:
    asset_id, job_id = await upload(client, clip, transcode=options or {})
    assert job_id is not None
    events = await follow(client, job_id)
    assert events[-1][1]["status"] == "succeeded", events[-1]
    return (await client.get(f"/api/v1/assets/{asset_id}")).json()


async def test_signed_playback_on_local_storage(
    make_user, playback_api: ApiServer, api: ApiServer, playback_env: dict, start_worker, clips: Path
) -> None:
    start_worker(playback_env, "--lease", "10")
    clip = make_clip_in(clips, "signed", size="320x240", duration=3, fps=25)
    user = await make_user("signed", server=playback_api)
    async with user.client() as client, httpx.AsyncClient(timeout=30) as anyone:
        public = await ready_asset(client, clip, {"mp4": True})
        asset_id = public["id"]
        patch = await client.patch(f"/api/v1/assets/{asset_id}", json={"playback_policy": "signed"})
        assert patch.status_code == 200, patch.text
        signed = patch.json()
        assert signed["playback_policy"] == "signed" and signed["playable"] is True
        assert [signed[k] for k in ("playback_url", "poster_url", "storyboard_url", "mp4_url")] == [None] * 4
        assert all(r["playlist_url"] is None for r in signed["renditions"])
        for old in (public["playback_url"], public["poster_url"], public["renditions"][0]["playlist_url"]):
            assert (await anyone.get(old)).status_code == 403  # the public paths serve it no more

        for bad in ({"ttl_s": 0}, {"ttl_s": 86401}, {"ttl_s": "x"}, {"other": 1}):
            assert_problem(await client.post(f"/api/v1/assets/{asset_id}/playback-tokens", json=bad), 422)
        created = await client.post(f"/api/v1/assets/{asset_id}/playback-tokens", json={"ttl_s": 600})
        assert created.status_code == 201, created.text
        token = created.json()
        assert set(token) == {"playback_url", "poster_url", "storyboard_url", "mp4_url", "expires_at"}

        # The master and every playlist and segment it leads to carry the token and play.
        master = await anyone.get(token["playback_url"])
        assert master.status_code == 200 and "private" in master.headers["cache-control"]
        uris = [line for line in master.text.splitlines() if line and not line.startswith("#")]
        assert uris and all("token=" in uri for uri in uris)
        media = await anyone.get(urljoin(token["playback_url"], uris[0]))
        segments = [line for line in media.text.splitlines() if line and not line.startswith("#")]
        assert 'URI="init' in media.text and "token=" in media.text.split('URI="')[1].split('"')[0]
        for segment in segments:
            got = await anyone.get(urljoin(str(media.url), segment))
            assert got.status_code == 200 and got.headers["content-type"] == "video/iso.segment"
        for field in ("poster_url", "storyboard_url", "mp4_url"):
            assert (await anyone.get(token[field])).status_code == 200
        vtt = (await anyone.get(token["storyboard_url"])).text
        sprite = vtt.splitlines()[3].split("#")[0]
        assert (
            "token=" in sprite
            and (await anyone.get(urljoin(token["storyboard_url"], sprite))).status_code == 200
        )
        # decodes end to end like a player would, through the token URLs
        argv = ["ffmpeg", "-v", "error", "-i", token["playback_url"], "-f", "null", "-"]
        decoded = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True)
        assert decoded.returncode == 0, decoded.stderr

        value = parse_qs(urlsplit(token["playback_url"]).query)["token"][0]
        altered = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
        assert (await anyone.get(token["playback_url"].replace(value, altered))).status_code == 403
        asset_part, expires, mac = value.split(".")
        longer = f"{asset_part}.{int(expires) + 3600}.{mac}"
        assert (await anyone.get(token["playback_url"].replace(value, longer))).status_code == 403
        other = await ready_asset(client, clip)  # a token is bound to its asset
        other_master = other["playback_url"].replace("/media/", "/media/", 1)
        await client.patch(f"/api/v1/assets/{other['id']}", json={"playback_policy": "signed"})
        assert (await anyone.get(f"{other_master}?token={value}")).status_code == 403

        short = (await client.post(f"/api/v1/assets/{asset_id}/playback-tokens", json={"ttl_s": 1})).json()
        deadline = time.monotonic() + 10
        while (status := (await anyone.get(short["playback_url"])).status_code) == 200:
            assert time.monotonic() < deadline, "a 1 s token still worked after 10 s"
            await asyncio.sleep(0.2)
        assert status == 403

        back = await client.patch(f"/api/v1/assets/{asset_id}", json={"playback_policy": "public"})
        assert back.json()["playback_url"] == public["playback_url"]
        assert (await anyone.get(public["playback_url"])).status_code == 200

    async with httpx.AsyncClient(base_url=api.url, headers=(await make_user("nokey")).headers) as plain:
        mine = await upload(plain, clip)
        refused = await plain.patch(f"/api/v1/assets/{mine[0]}", json={"playback_policy": "signed"})
        assert_problem(refused, 409)
        assert "PLAYBACK_SIGNING_KEY" in refused.json()["detail"]
        assert_problem(await plain.patch(f"/api/v1/assets/{mine[0]}", json={"playback_policy": "x"}), 422)


async def test_signed_playback_on_s3_presigns_what_the_playlists_name(
    make_user, playback_env: dict, start_api, start_worker, s3_server, clips: Path
) -> None:
    """S3: the API serves a signed asset's playlists (and storyboard) rewritten with presigned URLs that
    expire with the token; other objects answer with a redirect to such a URL."""
    bucket = await s3_server.create_bucket()
    env = {**playback_env, **s3_server.environ(bucket)}
    server = start_api(env)
    start_worker(env, "--lease", "10")
    clip = make_clip_in(clips, "s3signed", size="320x240", duration=3, fps=25)
    user = await make_user("s3signed", server=server)
    async with user.client() as client, httpx.AsyncClient(timeout=30) as anyone:
        asset = await ready_asset(client, clip, {"mp4": True})
        await client.patch(f"/api/v1/assets/{asset['id']}", json={"playback_policy": "signed"})
        key = asset["playback_url"].split("/media/", 1)[1]
        assert (await anyone.get(f"{server.url}/media/{key}")).status_code == 403
        tokens = f"/api/v1/assets/{asset['id']}/playback-tokens"
        token = (await client.post(tokens, json={"ttl_s": 300})).json()
        assert token["playback_url"].startswith(f"{server.url}/media/")

        master = await anyone.get(token["playback_url"])
        assert master.status_code == 200
        variant = next(line for line in master.text.splitlines() if line and not line.startswith("#"))
        assert "token=" in variant and "://" not in variant  # playlists come through the API again
        media = await anyone.get(urljoin(token["playback_url"], variant))
        segments = [line for line in media.text.splitlines() if line and not line.startswith("#")]
        init = media.text.split('URI="')[1].split('"')[0]
        for url in (init, *segments):
            assert url.startswith(s3_server.endpoint_url) and "X-Amz-Signature=" in url
            expires_in = int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
            assert 0 < expires_in <= 300
            assert (await anyone.get(url)).status_code == 200
        poster = await anyone.get(token["poster_url"])
        assert poster.status_code == 302 and poster.headers["location"].startswith(s3_server.endpoint_url)
        assert (await anyone.get(poster.headers["location"])).headers["content-type"] == "image/jpeg"
        vtt = (await anyone.get(token["storyboard_url"])).text
        assert vtt.splitlines()[3].startswith(s3_server.endpoint_url)
        argv = ["ffmpeg", "-v", "error", "-i", token["playback_url"], "-f", "null", "-"]
        decoded = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True)
        assert decoded.returncode == 0, decoded.stderr


async def test_mcp_shows_playback_and_signs_for_signed_assets(
    make_user, playback_api: ApiServer, playback_env: dict, start_worker, clips: Path
) -> None:
    from tests.test_mcp import call, connect

    start_worker(playback_env, "--lease", "10")
    clip = make_clip_in(clips, "mcp", size="320x240", duration=2, fps=25)
    user = await make_user("mcpplay", server=playback_api)
    async with user.client() as client:
        ready = await ready_asset(client, clip, {"mp4": True})
        async with connect(playback_api.url, user.token) as mcp:
            seen = await call(mcp, "get_asset", asset_id=ready["id"])
            for field in ("poster_url", "storyboard_url", "mp4_url", "playable", "playback_policy"):
                assert seen[field] == ready[field]
            public = await call(mcp, "get_playback_url", asset_id=ready["id"])
            for field in ("playback_url", "poster_url", "mp4_url"):
                assert public[field] == ready[field]
            assert public["playback_policy"] == "public" and public["expires_at"] is None

            await client.patch(f"/api/v1/assets/{ready['id']}", json={"playback_policy": "signed"})
            assert (await call(mcp, "get_asset", asset_id=ready["id"]))["playback_url"] is None
            first = await call(mcp, "get_playback_url", asset_id=ready["id"])
            assert first["playback_policy"] == "signed" and "token=" in first["playback_url"]
            assert first["expires_at"] is not None and "token=" in first["mp4_url"]
            async with httpx.AsyncClient() as anyone:
                assert (await anyone.get(first["playback_url"])).status_code == 200
                assert (await anyone.get(first["playback_url"].split("?")[0])).status_code == 403
