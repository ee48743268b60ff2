"""The playback extras of one transcode, read back by ffprobe: poster, storyboard sprite + WebVTT, MP4
(M4A for audio-only); the ladder's own-height top rung; output length within a frame, VFR included;
frames on demand accurate to one frame."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from pathlib import Path

import pytest

from fluxstudio.errors import UnreadableMedia
from fluxstudio.media import LadderOptions, plan_ladder, probe, transcode_hls
from fluxstudio.media.extras import M4A, MP4, POSTER, SPRITE, STORYBOARD
from fluxstudio.media.frames import extract_frame
from fluxstudio.media.hls import early_master
from tests.fixtures.media import parse_master, run_ffmpeg, segment_durations

pytestmark = pytest.mark.slow


def ffprobe(path: Path, *args: str) -> dict:
    argv = ["ffprobe", "-v", "error", "-of", "json", *args, str(path)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def streams(path: Path) -> list[dict]:
    return ffprobe(path, "-show_streams")["streams"]


def frame_times(path: Path) -> list[float]:
    data = ffprobe(path, "-select_streams", "v:0", "-show_entries", "frame=pts_time")
    return [float(f["pts_time"]) for f in data["frames"]]


def vtt_cues(path: Path) -> list[tuple[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line]
    assert lines[0] == "WEBVTT"
    return [(lines[i], lines[i + 1]) for i in range(1, len(lines), 2)]


async def test_extras_ride_the_same_encode(make_clip, tmp_path, tools) -> None:
    source = make_clip("clip", size="640x360", duration=7, fps=25)
    ladder = plan_ladder(await probe(source, tools), LadderOptions(mp4=True))
    starts: list[int] = []
    result = await transcode_hls(source, tmp_path / "out", ladder, tools, on_start=starts.append)
    out = tmp_path / "out"
    assert len(starts) == 1  # one ffmpeg for the ladder (the sprite join reads only our own tiles)
    assert (result.poster, result.storyboard, result.mp4) == (POSTER, STORYBOARD, MP4)
    assert {POSTER, SPRITE, STORYBOARD, MP4} <= set(result.files) and not list(out.glob(".tile-*"))

    (poster,) = streams(out / POSTER)
    assert (poster["codec_name"], poster["width"], poster["height"]) == ("mjpeg", 640, 360)

    mp4 = streams(out / MP4)
    assert sorted(s["codec_name"] for s in mp4) == ["aac", "h264"]
    video = next(s for s in mp4 if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (640, 360)
    assert float(ffprobe(out / MP4, "-show_format")["format"]["duration"]) == pytest.approx(7, abs=0.1)
    head = (out / MP4).read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))

    cues = vtt_cues(out / STORYBOARD)
    (sprite,) = streams(out / SPRITE)
    assert len(cues) == math.ceil(7 / 2)  # a tile every 2 s
    assert cues[0][0] == "00:00:00.000 --> 00:00:02.000" and cues[-1][0].endswith("--> 00:00:07.000")
    for i, (_, target) in enumerate(cues):
        name, _, xywh = target.partition("#xywh=")
        x, y, w, h = map(int, xywh.split(","))
        assert name == SPRITE and (x, y, w, h) == (160 * i, 0, 160, 90)
        assert x + w <= sprite["width"] and y + h <= sprite["height"]
    assert (sprite["width"], sprite["height"]) == (160 * len(cues), 90)


async def test_audio_only_mp4_is_an_m4a(make_clip, tmp_path, tools) -> None:
    source = make_clip("voice", video=False, duration=3, container="wav")
    ladder = plan_ladder(await probe(source, tools), LadderOptions(mp4=True))
    result = await transcode_hls(source, tmp_path / "out", ladder, tools)
    assert (result.poster, result.storyboard, result.mp4) == (None, None, M4A)
    assert [s["codec_name"] for s in streams(tmp_path / "out" / M4A)] == ["aac"]


async def test_a_source_between_standard_heights_keeps_its_own(make_clip, tmp_path, tools) -> None:
    source = make_clip("pal", size="768x576", duration=2, fps=25)
    ladder = plan_ladder(await probe(source, tools))
    assert [(r.name, r.width, r.height) for r in ladder.renditions] == [
        ("576p", 768, 576), ("480p", 640, 480), ("360p", 480, 360),
    ]  # fmt: skip
    await transcode_hls(source, tmp_path / "out", ladder, tools)
    variants = parse_master(tmp_path / "out" / "master.m3u8")
    assert [v["RESOLUTION"] for v in variants] == ["768x576", "640x480", "480x360"]


async def test_output_lasts_as_long_as_the_source(make_clip, tmp_path, tools) -> None:
    source = make_clip("cfr", size="320x240", duration=4.4, fps=30, audio=False)
    ladder = plan_ladder(await probe(source, tools))
    await transcode_hls(source, tmp_path / "out", ladder, tools)
    total = sum(segment_durations(tmp_path / "out" / f"{ladder.renditions[0].name}/index.m3u8"))
    assert total == pytest.approx(4.4, abs=1 / 30 + 1e-3)


async def test_variable_frame_rate_keeps_its_timing(tmp_path, tools) -> None:
    """A few frames with long, uneven gaps (a screen recording, a phone's slow scene): the output keeps
    every frame at its own time, duplicates none (the dup-frames watchdog stays quiet) and lasts as long
    as the source, within one frame."""
    vfr = tmp_path / "vfr.mkv"
    # 12 frames at 0, 0.5, 1, ..., then the last frames 1.5 s apart: 8.5 s in all
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=10", "-frames:v", "12",
        "-vf", "setpts='if(lt(N,8),N*0.5,4+(N-8)*1.5)/TB'", "-fps_mode", "passthrough",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(vfr),
    )  # fmt: skip
    info = await probe(vfr, tools)
    ladder = plan_ladder(info, LadderOptions(mp4=True))
    out = tmp_path / "out"
    await transcode_hls(vfr, out, ladder, tools)
    source_times, output_times = frame_times(vfr), frame_times(out / MP4)
    assert len(output_times) == len(source_times) == 12  # no duplicated frames
    assert output_times == pytest.approx([t - source_times[0] for t in source_times], abs=0.02)
    total = sum(segment_durations(out / f"{ladder.renditions[0].name}/index.m3u8"))
    # within one frame: the shortest frame of the source, not the 1.5 s ones
    one_frame = min(b - a for a, b in itertools.pairwise(source_times))
    assert total == pytest.approx(info.duration_s, abs=one_frame), (total, info.duration_s)


def test_early_master_waits_for_every_rendition(tmp_path) -> None:
    from fluxstudio.media import Ladder, Rendition

    renditions = tuple(Rendition(n, w, h, b, 128_000, 30.0) for n, w, h, b in (
        ("720p", 1280, 720, 2_800_000), ("360p", 640, 360, 800_000)))  # fmt: skip
    ladder = Ladder(renditions, True, 4, "fmp4", 30.0, 20.0)
    playlist = '#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:1.0,\nseg_00000.m4s\n'
    for name in ("720p", "audio"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "index.m3u8").write_text(playlist)
    assert early_master(tmp_path, ladder) is None and not (tmp_path / "master.m3u8").exists()
    (tmp_path / "360p").mkdir()
    (tmp_path / "360p" / "index.m3u8").write_text("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n")
    assert early_master(tmp_path, ladder) is None  # a playlist without a segment is not enough
    (tmp_path / "360p" / "index.m3u8").write_text(playlist)
    master = early_master(tmp_path, ladder)
    assert master is not None
    variants = parse_master(master)
    assert [v["RESOLUTION"] for v in variants] == ["1280x720", "640x360"]
    assert all(v["AUDIO"] == '"audio"' for v in variants)


def _reference_frames(source: Path, first: int, count: int, tmp_path: Path) -> list[bytes]:
    frames = []
    for n in range(first, first + count):
        ref = tmp_path / f"ref{n}.png"
        run_ffmpeg("-i", str(source), "-vf", f"select=eq(n\\,{n})", "-frames:v", "1", str(ref))
        frames.append(ref)
    return [_gray_bytes(f) for f in frames]


def _gray_bytes(path: Path) -> bytes:
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", "scale=64:36,format=gray", "-f", "rawvideo", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return out.stdout


def _distance(a: bytes, b: bytes) -> int:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True))


async def test_a_frame_at_any_time_is_exact(make_clip, tmp_path, tools) -> None:
    # A long GOP, so the seek lands far before the frame and accurate seeking has work to do.
    source = make_clip("gop", size="320x240", duration=6, fps=25, audio=False, extra=("-g", "100"))
    info = await probe(source, tools)
    # Frame 87 is shown from 3.48 s to 3.52 s: any time inside it gives that frame.
    refs = _reference_frames(source, 86, 3, tmp_path)
    for time_s in (3.48, 3.5, 3.5199):
        jpeg = await extract_frame(source, tools, time_s=time_s, width=160, fps=info.fps)
        shot = tmp_path / "shot.jpg"
        shot.write_bytes(jpeg)
        assert streams(shot)[0]["width"] == 160
        seen = _gray_bytes(shot)
        distances = [_distance(seen, ref) for ref in refs]
        assert distances.index(min(distances)) == 1, (time_s, distances)


async def test_frames_use_the_transcode_guards(tmp_path, tools) -> None:
    """An HLS playlist naming another file is refused by the demuxer whitelist, as for a transcode."""
    secret = tmp_path / "secret.ts"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x64:r=5", "-t", "1", "-c:v", "libx264", str(secret))
    playlist = tmp_path / "upload.mp4"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{secret}\n#EXT-X-ENDLIST\n")
    with pytest.raises(UnreadableMedia):
        await extract_frame(playlist, tools, time_s=0.0, width=64, fps=5)
