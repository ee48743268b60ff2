"""Uploaded media is hostile. Every attack measured in MEDIA.md is refused at probe or stopped in budget,
on every probe path, and ordinary media still goes through the same guards (positive control)."""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import shutil
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

from fluxstudio.errors import MediaError, UnreadableMedia
from fluxstudio.media import Ladder, LadderOptions, Progress, Rendition, plan_ladder, probe, transcode_hls
from tests.fixtures.media import assert_playable, make_clip_in, run_ffmpeg

SMALL = Ladder(
    renditions=(Rendition("144p", 176, 144, 300_000, 64_000, 30.0),),
    audio=True,
    segment_seconds=2,
    segment_format="fmp4",
    fps=30.0,
    duration_s=2.0,
)

VIDEO_ONLY = dataclasses.replace(SMALL, audio=False)


@pytest.fixture
def probe_paths(tools, debian_tools, static_tools):
    return [(tools, True), (debian_tools, False), (static_tools, False)]


async def assert_refused(path: Path, probe_paths, tmp_path: Path, ladder: Ladder = SMALL) -> None:
    """Refused by every probe path, and by transcode_hls even if probe were skipped; nothing written."""
    for tools, use_ffprobe in probe_paths:
        with pytest.raises(UnreadableMedia):
            await probe(path, tools, use_ffprobe=use_ffprobe)
    out = tmp_path / f"out-{path.name}"
    with pytest.raises(MediaError):
        await transcode_hls(path, out, ladder, probe_paths[0][0])
    assert not out.exists()


@pytest.fixture
def other_users_video(tmp_path: Path) -> Path:
    """Another user's upload on the same disk: what a crafted playlist would try to copy."""
    folder = tmp_path / "other-user"
    folder.mkdir()
    return make_clip_in(folder, "secret", size="176x144", container="ts")


def playlist(*segments: str) -> str:
    body = "".join(f"#EXTINF:2.0,\n{s}\n" for s in segments)
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n{body}#EXT-X-ENDLIST\n"


@pytest.mark.parametrize("suffix", [".m3u8", ".mp4", ".bin"])
@pytest.mark.parametrize("reference", ["absolute", "file_url", "relative"])
async def test_playlist_reading_another_users_file(
    tmp_path, other_users_video, probe_paths, suffix, reference
):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    target = {
        "absolute": str(other_users_video),
        "file_url": f"file://{other_users_video}",
        "relative": f"../other-user/{other_users_video.name}",
    }[reference]
    crafted = uploads / f"crafted{suffix}"
    crafted.write_text(playlist(target))
    await assert_refused(crafted, probe_paths, tmp_path)


@pytest.mark.parametrize("suffix", [".txt", ".mp4", ".bin"])
async def test_ffconcat_list_naming_a_sibling(tmp_path, probe_paths, suffix):
    sibling = make_clip_in(tmp_path, "sibling", size="176x144")
    crafted = tmp_path / f"list{suffix}"
    crafted.write_text(f"ffconcat version 1.0\nfile {sibling.name}\nfile {sibling}\n")
    await assert_refused(crafted, probe_paths, tmp_path)


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server():
    handler = type("Handler", (_CountingHandler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("kind", ["hls", "ffconcat"])
async def test_loopback_server_sees_zero_requests(tmp_path, loopback_server, probe_paths, kind):
    base, requests = loopback_server
    crafted = tmp_path / "innocent.mp4"
    crafted.write_text(
        playlist(f"{base}/seg0.ts") if kind == "hls" else f"ffconcat version 1.0\nfile '{base}/seg0.ts'\n"
    )
    await assert_refused(crafted, probe_paths, tmp_path)
    assert requests == []


def png_bomb(path: Path, side: int = 16000) -> Path:
    """A 16000x16000 grey PNG: a few hundred KB on disk, 256 MB once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, rows = zlib.compressobj(9), b"\x00" * (side + 1) * 1000
    pixels = b"".join(compressor.compress(rows) for _ in range(side // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def png_bomb_file(tmp_path_factory) -> Path:
    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.mark.parametrize("name", ["bomb.png", "bomb.mp4"])
async def test_png_bomb_rejected_fast(tmp_path, probe_paths, png_bomb_file, name):
    bomb = tmp_path / name
    shutil.copyfile(png_bomb_file, bomb)
    assert bomb.stat().st_size < 1_000_000
    started = time.monotonic()
    await assert_refused(bomb, probe_paths, tmp_path)
    assert time.monotonic() - started < 10


async def test_8k_h264_rejected_by_max_pixels(tmp_path, probe_paths):
    huge = make_clip_in(tmp_path, "8k", size="7680x4320", duration=2 / 30, audio=False)
    for tools, use_ffprobe in probe_paths:
        with pytest.raises(UnreadableMedia, match="pixels"):
            await probe(huge, tools, use_ffprobe=use_ffprobe)
    out = tmp_path / "out"
    with pytest.raises(UnreadableMedia):  # the decoder refuses it too, if probe were skipped
        await transcode_hls(huge, out, SMALL, probe_paths[0][0])
    assert not out.exists()


async def transcode_with_lying_ladder(source: Path, out: Path, tools) -> tuple[float, list[Progress]]:
    """As if the header said 2 s: input and output `-t` must stop ffmpeg near there, whatever follows."""
    events: list[Progress] = []
    started = time.monotonic()
    # The output cannot match what the header claimed: refusing it is right too.
    with contextlib.suppress(UnreadableMedia):
        await transcode_hls(source, out, VIDEO_ONLY, tools, on_progress=events.append, timeout_s=60)
    return time.monotonic() - started, events


async def test_ten_hour_clip(tmp_path, probe_paths):
    long = make_clip_in(
        tmp_path, "tenhours", size="64x64", fps="1/60", duration=36000, audio=False, container="mkv"
    )
    for tools, use_ffprobe in probe_paths:
        with pytest.raises(UnreadableMedia, match="lasts"):
            await probe(long, tools, use_ffprobe=use_ffprobe)
    elapsed, events = await transcode_with_lying_ladder(long, tmp_path / "out", probe_paths[0][0])
    # Stopped by the output -t, or sooner as mostly duplicated frames (each frame 60 s from the next).
    assert elapsed < 20 and max((e.out_time_s for e in events), default=0.0) <= 3.1


async def test_two_frames_ten_hours_apart_make_no_flood(tmp_path, probe_paths):
    gap = tmp_path / "gap.mkv"
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=64x64:r=1",
        "-frames:v",
        "2",
        "-vf",
        "setpts=N*36000/TB",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(gap),
    )
    for tools, use_ffprobe in probe_paths:
        with pytest.raises(UnreadableMedia, match="lasts"):
            await probe(gap, tools, use_ffprobe=use_ffprobe)
    elapsed, events = await transcode_with_lying_ladder(gap, tmp_path / "out", probe_paths[0][0])
    assert elapsed < 20 and all(e.out_time_s <= 3.1 for e in events)


async def test_raw_h264_without_duration_is_refused(tmp_path, probe_paths):
    raw = tmp_path / "raw.h264"
    run_ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=160x120:r=30",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-f",
        "h264",
        str(raw),
    )
    await assert_refused(raw, probe_paths, tmp_path)


async def test_text_file_is_refused(tmp_path, probe_paths):
    text = tmp_path / "notes.mp4"
    text.write_text("just some text\n" * 100)
    await assert_refused(text, probe_paths, tmp_path)


@pytest.mark.parametrize("name", ["-i", "clip%d.mp4", "a b'c\";|.mp4"])
async def test_hostile_file_names(tmp_path, make_clip, tools, name):
    source = tmp_path / name
    shutil.copyfile(make_clip("plain", size="160x120", duration=1), source)
    info = await probe(source, tools)
    ladder = plan_ladder(info)
    out = tmp_path / "out"
    result = await transcode_hls(source, out, ladder, tools)
    assert_playable(out, ladder, result, info.duration_s)


@pytest.mark.parametrize("container", ["mp4", "mkv", "webm", "avi", "ts", "flv", "ogg", "wav", "mp3", "aac"])
async def test_ordinary_media_still_transcodes(tmp_path, make_clip, probe_paths, container):
    source = make_clip("ordinary", size="160x120", duration=1.5, container=container)
    infos = [await probe(source, tools, use_ffprobe=use) for tools, use in probe_paths]
    assert len({(i.has_video, i.has_audio, i.width, i.height) for i in infos}) == 1
    ladder = plan_ladder(infos[0], LadderOptions(segment_seconds=2))
    out = tmp_path / "out"
    result = await transcode_hls(source, out, ladder, probe_paths[0][0])
    assert_playable(out, ladder, result, infos[0].duration_s)
