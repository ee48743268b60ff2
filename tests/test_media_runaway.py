"""Sources that make ffmpeg run away are bad media, caught within seconds whatever the output frame-rate
mode: one gap so long that ffmpeg computes filler frames without reporting (`process.Runaway`), and
gaps that make most of the output duplicates (`dup_frames` in the progress report). A child that is
silent because it gets no CPU is not blamed on the media."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from fluxstudio.errors import MediaError, UnreadableMedia
from fluxstudio.media import plan_ladder, probe, transcode_hls
from fluxstudio.media.guards import Limits
from tests.fixtures.media import group_alive, run_ffmpeg
from tests.test_worker_hardening import frames_hours_apart

#: Measured 8-11 s on this 2-core machine, over 60 s while six test suites shared it (then the 60 s stall
#: rule ends it, still as bad media); the unfixed code ran for minutes and was retried.
BOUND_S = 90


def spawned(pids: list[int]):
    return pids.append


async def test_frames_hours_apart_are_stopped_as_runaway_bad_media(tmp_path: Path, tools) -> None:
    """With timestamps passed through (no filler frames) ffmpeg finishes at once and the output's
    duration gives the file away; were filler frames made, the silent-CPU rule would stop it. Either
    way: bad media, fast, never retried, nothing left running."""
    source = frames_hours_apart(tmp_path)
    ladder = plan_ladder(await probe(source, tools))
    pids: list[int] = []
    started = time.monotonic()
    with pytest.raises(UnreadableMedia) as caught:
        await asyncio.wait_for(
            transcode_hls(source, tmp_path / "out", ladder, tools, on_start=spawned(pids)), BOUND_S * 2
        )
    assert isinstance(caught.value, UnreadableMedia) and not caught.value.retryable
    assert time.monotonic() - started < BOUND_S
    assert group_alive(pids[0]) == [] and not (tmp_path / "out").exists()


async def test_mostly_duplicated_output_is_bad_media(tmp_path: Path, tools) -> None:
    gaps = tmp_path / "gaps.mkv"  # bursts of 10 frames at 30 fps, 30 s apart, declared as 30 fps
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=640x360:r=30", "-frames:v", "300",
        "-vf", "setpts='(N+floor(N/10)*900)/30/TB'", "-fps_mode", "passthrough",
        "-c:v", "libx264", "-preset", "ultrafast", str(gaps),
    )  # fmt: skip
    ladder = plan_ladder(await probe(gaps, tools))
    started = time.monotonic()
    with pytest.raises(UnreadableMedia, match="duplicates"):
        await asyncio.wait_for(transcode_hls(gaps, tmp_path / "out", ladder, tools), BOUND_S * 2)
    assert time.monotonic() - started < BOUND_S


async def test_a_stopped_ffmpeg_is_not_blamed_on_the_media(make_clip, tmp_path: Path, tools) -> None:
    source = make_clip("stopped", size="320x240", duration=10, audio=False)
    ladder = plan_ladder(await probe(source, tools))
    pids: list[int] = []
    progressed = asyncio.Event()
    job = asyncio.create_task(
        transcode_hls(
            source, tmp_path / "out", ladder, tools, on_start=spawned(pids), preset="medium",
            limits=Limits(stall_timeout_s=2.0),
            on_progress=lambda p: p.out_time_s > 0 and progressed.set(),
        )
    )  # fmt: skip
    await asyncio.wait_for(progressed.wait(), 90)
    os.kill(pids[0], signal.SIGSTOP)  # silent, but burning no CPU: the machine's problem, retryable
    with pytest.raises(MediaError, match="no progress") as caught:
        await asyncio.wait_for(job, 60)
    assert not isinstance(caught.value, UnreadableMedia)
