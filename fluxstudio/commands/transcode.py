"""`fluxstudio transcode INPUT -o DIR`: the HLS pipeline on one local file, with a progress bar.

It needs no services: this is the same `media` code a worker runs, minus the queue and storage.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

from fluxstudio import media
from fluxstudio.commands.bars import speed_text, transcode_bar
from fluxstudio.config import Settings
from fluxstudio.errors import Invalid


async def transcode_file(
    settings: Settings,
    source: str,
    output: str,
    *,
    renditions: str | None,
    segment_seconds: int,
    segment_format: str,
) -> int:
    """Probe, plan and transcode one file; print the master playlist's path on stdout."""
    source_path, out_dir = Path(source), Path(output)
    if not source_path.is_file():
        raise Invalid(f"{source} is not a file")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise Invalid(f"{output} exists and is not an empty folder; choose a new one")

    tools = media.find_tools(settings.ffmpeg_path, settings.ffprobe_path)
    info = await media.probe(source_path, tools)
    names = tuple(n.strip() for n in renditions.split(",") if n.strip()) if renditions else None
    options = media.LadderOptions(
        renditions=names, segment_seconds=segment_seconds, segment_format=segment_format
    )
    ladder = media.plan_ladder(info, options)
    console = Console(file=sys.stderr)
    plan = ", ".join(f"{r.name} {r.width}x{r.height}" for r in ladder.renditions) or "audio only"
    console.print(f"{source_path.name}: {info.duration_s:.1f} s, {plan}")

    with transcode_bar(console) as bar:
        task = bar.add_task("hls", total=1.0, speed="")

        def show(event: media.Progress) -> None:
            bar.update(task, completed=event.progress, speed=speed_text(event.speed))

        result = await media.transcode_hls(
            source_path,
            out_dir,
            ladder,
            tools,
            on_progress=show,
            preset=settings.ffmpeg_preset,
            threads=settings.ffmpeg_threads,
        )
        bar.update(task, completed=1.0)
    print(result.master)
    return 0
