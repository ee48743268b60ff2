"""One frame of a source as a JPEG, for thumbnails at any time: seek first, then decode a single frame.

`-ss` before `-i` seeks the demuxer to the keyframe before the time and decodes only from there (fast,
whatever the time), and ffmpeg's accurate seek then drops the frames before the time, so the frame is
exact. The source is hostile like any upload: it is staged alone, read through the same demuxer
whitelist, pixel limit and rlimits as a transcode (`guards.py`, `process.py`), with a wall-clock budget.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from fluxstudio.errors import MediaError, UnreadableMedia
from fluxstudio.media import process
from fluxstudio.media.guards import DEFAULT_LIMITS, Limits, StagedInput, input_args, input_url
from fluxstudio.media.tools import Tools

FRAME_TIMEOUT_S = 30.0
_FRAME_NAME = "frame.jpg"


def frame_index(time_s: float, fps: float | None) -> int:
    """The frame shown at `time_s`: frames are numbered from 0, each lasting 1/fps."""
    rate = fps if fps and fps > 0 else 30.0
    return max(0, math.floor(time_s * rate + 1e-6))


def frame_time(index: int, fps: float | None) -> float:
    rate = fps if fps and fps > 0 else 30.0
    return index / rate


async def extract_frame(
    source: Path,
    tools: Tools,
    *,
    time_s: float,
    width: int,
    fps: float | None,
    limits: Limits = DEFAULT_LIMITS,
    timeout_s: float = FRAME_TIMEOUT_S,
    work_dir: Path | None = None,
) -> bytes:
    """JPEG bytes of the frame at `time_s` (rounded down to its frame), `width` pixels wide."""
    rate = fps if fps and fps > 0 else 30.0
    # Half a frame early: the first frame at or after the seek point is then the frame itself, whatever
    # the rounding of its timestamp.
    seek = max(0.0, frame_time(frame_index(time_s, fps), fps) - 0.5 / rate)
    staged = await asyncio.to_thread(StagedInput, source, work_dir)
    try:
        out = staged.dir / _FRAME_NAME
        # fmt: off
        argv = [
            tools.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
            *input_args(limits), "-ss", f"{seek:.6f}", "-i", input_url(staged.path),
            "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
            "-vf", f"scale={width}:-2:flags=bicubic", "-frames:v", "1", "-q:v", "3",
            "-f", "image2", "-update", "1", f"file:{_FRAME_NAME}",
        ]
        # fmt: on
        try:
            done = await process.run(
                argv, cwd=staged.dir, limits=limits, timeout_s=timeout_s, cpu_seconds=int(timeout_s) + 5
            )
        except process.Stopped as exc:
            raise MediaError(f"frame extraction stopped: {exc.reason}", stderr_tail=exc.stderr_tail) from None
        if done.exit_code != 0:
            raise UnreadableMedia("ffmpeg could not decode a frame", exit_code=done.exit_code,
                                  stderr_tail=done.stderr_tail)  # fmt: skip
        try:
            data = await asyncio.to_thread(out.read_bytes)
        except FileNotFoundError:
            raise UnreadableMedia("the source has no frame at that time") from None
        if not data:
            raise UnreadableMedia("the source has no frame at that time")
        return data
    finally:
        staged.close()
