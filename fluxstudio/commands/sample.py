"""`fluxstudio sample FILE`: generate a test clip (moving test pattern and a tone) with ffmpeg's own sources.

So the README's first command, the demo and the benchmarks need no media from anywhere else.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fluxstudio import media
from fluxstudio.config import Settings
from fluxstudio.errors import Invalid, MediaError


def sample_args(
    ffmpeg: str, out: Path, *, seconds: float, width: int, height: int, fps: int, audio: bool = True
) -> list[str]:
    """The argv that makes a clip; libx264 ultrafast keeps generation far cheaper than the transcode."""
    args = [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}:rate={fps}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac", "-b:a", "128k"] if audio else []
    return [*args, "-movflags", "+faststart", str(out)]


async def make_sample(settings: Settings, output: str, *, seconds: float, size: str, fps: int) -> int:
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise Invalid(f"--size must look like 1920x1080, not {size!r}") from None
    if not (16 <= width <= 3840 and 16 <= height <= 3840 and 0 < seconds <= 600 and 1 <= fps <= 60):
        raise Invalid("--size must be within 16x16..3840x3840, --seconds within 0..600, --fps within 1..60")
    tools = media.find_tools(settings.ffmpeg_path, settings.ffprobe_path)
    out = Path(output)
    process = await asyncio.create_subprocess_exec(
        *sample_args(tools.ffmpeg, out, seconds=seconds, width=width, height=height, fps=fps),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise MediaError(
            "ffmpeg could not generate the sample",
            exit_code=process.returncode,
            stderr_tail=stderr.decode(errors="replace")[-2000:],
        )
    print(f"wrote {seconds:g} s of {width}x{height} at {fps} fps with a 440 Hz tone", file=sys.stderr)
    print(out)
    return 0
