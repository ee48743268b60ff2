"""The progress bars the commands draw on stderr, so `transcode` and `upload --wait` look the same."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn


def transcode_bar(console: Console) -> Progress:
    """A bar for a transcode's share done (0 to 1), with ffmpeg's speed in a `speed` task field."""
    return Progress(
        TextColumn("transcoding"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
        console=console,
    )


def speed_text(speed: float | None) -> str:
    """`1.25x`, or nothing before ffmpeg has reported a speed."""
    return f"{speed:.2f}x" if speed else ""
