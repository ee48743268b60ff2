"""What rides along with the ladder in the same ffmpeg process: a poster, a storyboard sprite and its
WebVTT, and optionally one progressive MP4 (M4A for audio-only sources).

The sizes and times here are what the filter graph in `command.py` is told. The encode writes one small
JPEG per storyboard tile; `compose_sprite` then joins the tiles it finds into the sprite (a `tile`
filter in the encode would start its output only at the very end, which stalls ffmpeg's progress
report), and the WebVTT names exactly those tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from fluxstudio.errors import MediaError
from fluxstudio.media import process
from fluxstudio.media.guards import DEFAULT_LIMITS
from fluxstudio.media.ladder import Ladder
from fluxstudio.media.tools import Tools

POSTER = "poster.jpg"
SPRITE = "storyboard.jpg"
STORYBOARD = "storyboard.vtt"
TILES = ".tile-%05d.jpg"  # the encode's tiles, numbered from 1, removed once joined
MP4 = "download.mp4"
M4A = "download.m4a"

TILE_WIDTH = 160
MAX_TILES = 100
MAX_COLUMNS = 10
MIN_INTERVAL_S = 2


@dataclass(frozen=True)
class Storyboard:
    interval_s: int  # one tile every this many seconds, from 0
    count: int
    columns: int
    rows: int
    tile_width: int
    tile_height: int
    duration_s: float

    def cues(self) -> list[tuple[float, float, int, int]]:
        """(start, end, x, y) of each tile."""
        out = []
        for i in range(self.count):
            start = i * self.interval_s
            end = min((i + 1) * self.interval_s, self.duration_s)
            x, y = (i % self.columns) * self.tile_width, (i // self.columns) * self.tile_height
            out.append((start, end, x, y))
        return out


def plan_storyboard(ladder: Ladder) -> Storyboard | None:
    """None for an audio-only source. At most MAX_TILES tiles in one sprite, whatever the length."""
    if not ladder.renditions or not ladder.stills or ladder.duration_s <= 0:
        return None
    top = ladder.renditions[0]
    interval = max(MIN_INTERVAL_S, math.ceil(ladder.duration_s / MAX_TILES))
    count = max(1, math.ceil(ladder.duration_s / interval))
    columns = min(MAX_COLUMNS, count)
    height = max(2, round(TILE_WIDTH * top.height / top.width / 2) * 2)
    return Storyboard(
        interval_s=interval,
        count=count,
        columns=columns,
        rows=math.ceil(count / columns),
        tile_width=TILE_WIDTH,
        tile_height=height,
        duration_s=ladder.duration_s,
    )


async def compose_sprite(tools: Tools, out_dir: Path, board: Storyboard, timeout_s: float = 60) -> Storyboard:
    """Join the tiles the encode wrote into `SPRITE`; returns the storyboard of the tiles there were."""
    tiles = sorted(out_dir.glob(".tile-*.jpg"))
    if not tiles:
        raise MediaError("ffmpeg wrote no storyboard tiles")
    count = min(len(tiles), board.count)  # a tick past the end, if the fps filter made one, is dropped
    columns = min(MAX_COLUMNS, count)
    board = replace(board, count=count, columns=columns, rows=math.ceil(count / columns))
    # Our own files, numbered from 1: the image2 demuxer reads nothing else (its pattern has no path).
    argv = [
        tools.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "image2", "-framerate", "1",
        "-i", TILES, "-vf", f"tile={columns}x{board.rows}",
        "-frames:v", "1", "-q:v", "5", "-y", str((out_dir / SPRITE).absolute()),
    ]  # fmt: skip
    done = await process.run(argv, cwd=out_dir, limits=DEFAULT_LIMITS, timeout_s=timeout_s)
    if done.exit_code != 0 or not (out_dir / SPRITE).is_file():
        raise MediaError("could not join the storyboard tiles", exit_code=done.exit_code,
                         stderr_tail=done.stderr_tail)  # fmt: skip
    for tile in tiles:
        tile.unlink()
    return board


def has_poster(ladder: Ladder) -> bool:
    return bool(ladder.renditions) and ladder.stills


def poster_time_s(ladder: Ladder) -> float:
    """A representative frame: a third into the clip, but no later than 10 s (titles are over by then)."""
    return round(min(ladder.duration_s / 3, 10.0), 3)


def mp4_name(ladder: Ladder) -> str | None:
    if not ladder.mp4:
        return None
    return M4A if ladder.audio_only else MP4


def write_storyboard_vtt(out_dir: Path, board: Storyboard, sprite: str = SPRITE) -> Path:
    """The WebVTT players read for scrub previews: each cue names a region of the sprite."""
    lines = ["WEBVTT", ""]
    for start, end, x, y in board.cues():
        lines += [
            f"{_stamp(start)} --> {_stamp(end)}",
            f"{sprite}#xywh={x},{y},{board.tile_width},{board.tile_height}",
            "",
        ]
    path = out_dir / STORYBOARD
    path.write_text("\n".join(lines))
    return path


def _stamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
