"""Read what ffmpeg wrote, check it is whole, and write the master playlist from measured sizes.

ffmpeg's own master lacks FRAME-RATE and states nominal rates; ours states the peak and average bit rate
of the segments as written, so BANDWIDTH is honest. It is written last, atomically.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fluxstudio.errors import MediaError

AAC_LC = "mp4a.40.2"
_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')
# (level_idc, max macroblocks per second, max frame size in macroblocks), H.264 table A-1
_H264_LEVELS = (
    (30, 40_500, 1_620),
    (31, 108_000, 3_600),
    (32, 216_000, 5_120),
    (40, 245_760, 8_192),
    (42, 522_240, 8_704),
    (50, 589_824, 22_080),
    (51, 983_040, 36_864),
    (52, 2_073_600, 36_864),
)


@dataclass(frozen=True)
class MediaPlaylist:
    segments: tuple[tuple[str, float], ...]  # (uri, duration)
    init: str | None
    ended: bool

    @property
    def duration_s(self) -> float:
        return sum(duration for _, duration in self.segments)


@dataclass(frozen=True)
class Variant:
    """One line of the master playlist, with what was measured."""

    name: str
    playlist: str  # relative to the master, e.g. "720p/index.m3u8"
    bandwidth: int  # peak segment bit rate, bits per second
    average_bandwidth: int
    codecs: str
    width: int | None
    height: int | None
    fps: float | None
    segments: int
    duration_s: float
    audio_group: str | None = None  # the EXT-X-MEDIA audio group it plays with


def h264_level(width: int, height: int, fps: float) -> int:
    """The lowest level whose frame size and macroblock rate fit; x264 is told the same level."""
    frame = math.ceil(width / 16) * math.ceil(height / 16)
    for level, max_rate, max_frame in _H264_LEVELS:
        if frame <= max_frame and frame * fps <= max_rate:
            return level
    return 52


def h264_codecs(level: int, audio: bool) -> str:
    video = f"avc1.6400{level:02x}"  # High profile, no constraint flags
    return f"{video},{AAC_LC}" if audio else video


def read_media_playlist(path: Path) -> MediaPlaylist:
    return parse_media_playlist(path.read_text())


def parse_media_playlist(text: str) -> MediaPlaylist:
    segments: list[tuple[str, float]] = []
    init, ended, pending = None, False, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            pending = float(line[8:].split(",", 1)[0])
        elif line.startswith("#EXT-X-MAP:"):
            init = line.split('URI="', 1)[1].split('"', 1)[0]
        elif line == "#EXT-X-ENDLIST":
            ended = True
        elif line and not line.startswith("#") and pending is not None:
            segments.append((line, pending))
            pending = None
    return MediaPlaylist(tuple(segments), init, ended)


def measure(
    out_dir: Path, playlist: str, expected_s: float, margin_s: float
) -> tuple[MediaPlaylist, int, int]:
    """Check one rendition is complete; return it with its peak and average bit rate.

    Exit 0 is not success: a truncated input exits 0 with a short output, so the duration is checked too.
    """
    path = out_dir / playlist
    media = read_media_playlist(path) if path.is_file() else MediaPlaylist((), None, False)
    if not media.ended or not media.segments:
        raise MediaError(f"{playlist} is incomplete")
    folder = path.parent
    files = [folder / uri for uri, _ in media.segments] + ([folder / media.init] if media.init else [])
    if missing := [f.name for f in files if not f.is_file()]:
        raise MediaError(f"{playlist} names missing files: {', '.join(missing[:3])}")
    if abs(media.duration_s - expected_s) > margin_s:
        raise ShortOutput(f"{playlist} lasts {media.duration_s:.2f} s, the source {expected_s:.2f} s")
    rates, total_bits = [], 0
    longest = max(duration for _, duration in media.segments)
    for uri, duration in media.segments:
        bits = (folder / uri).stat().st_size * 8
        total_bits += bits
        # A short first or last segment says little about the peak; count it only if it is all there is.
        if duration >= 0.5 * longest or len(media.segments) == 1:
            rates.append(bits / max(duration, 1e-3))
    average = math.ceil(total_bits / max(media.duration_s, 1e-3))
    return media, max(math.ceil(max(rates, default=average)), average), average


class ShortOutput(MediaError):
    """The output is shorter or longer than the source said it would be."""


def write_master(out_dir: Path, variants: list[Variant], audio: Variant | None, *, fmp4: bool) -> Path:
    """`variants` become EXT-X-STREAM-INF lines; `audio`, if any, the EXT-X-MEDIA they share."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{7 if fmp4 else 3}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(
            f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{audio.audio_group}",NAME="{audio.name}",DEFAULT=YES,'
            f'AUTOSELECT=YES,CHANNELS="2",URI="{audio.playlist}"'
        )
    for v in sorted(variants, key=lambda v: -v.bandwidth):
        attributes = [f"BANDWIDTH={v.bandwidth}", f"AVERAGE-BANDWIDTH={v.average_bandwidth}"]
        if v.width and v.height:
            attributes.append(f"RESOLUTION={v.width}x{v.height}")
        attributes.append(f'CODECS="{v.codecs}"')
        if v.fps:
            attributes.append(f"FRAME-RATE={v.fps:.3f}")
        if v.audio_group:
            attributes.append(f'AUDIO="{v.audio_group}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), v.playlist]
    master = out_dir / "master.m3u8"
    partial = out_dir / ".master.m3u8.tmp"
    partial.write_text("\n".join(lines) + "\n")
    os.replace(partial, master)  # a reader sees no master or a whole one
    return master


def rewrite_playlist_uris(text: str, rewrite: Callable[[str], str]) -> str:
    """Every URI of an HLS playlist (URI lines and `URI="..."` attributes) passed through `rewrite`."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(rewrite(stripped))
        elif 'URI="' in stripped:
            out.append(_URI_ATTRIBUTE.sub(lambda m: f'URI="{rewrite(m.group(1))}"', stripped))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def rewrite_vtt_images(text: str, rewrite: Callable[[str], str]) -> str:
    """A storyboard WebVTT with each cue's image (`sprite.jpg#xywh=...`) passed through `rewrite`."""
    out = []
    for line in text.splitlines():
        if "#xywh=" in line and "-->" not in line:
            uri, _, fragment = line.partition("#")
            out.append(f"{rewrite(uri)}#{fragment}")
        else:
            out.append(line)
    return "\n".join(out) + "\n"
