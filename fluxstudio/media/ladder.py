"""Which renditions a source gets: presets capped at the source, planned by the short side.

Pure: no ffmpeg here. The sizes computed match what ffmpeg's `-2` scale gives, so the master playlist
can state them before the encode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fluxstudio.errors import Invalid
from fluxstudio.media.probe import MediaInfo

SegmentFormat = Literal["fmp4", "ts"]


@dataclass(frozen=True)
class Rendition:
    name: str  # "720p": the short side, whatever the orientation
    width: int
    height: int
    video_bitrate: int  # bits per second
    audio_bitrate: int  # of the shared audio rendition played with it; 0 when there is no audio
    fps: float

    @property
    def bandwidth(self) -> int:
        """Nominal peak (the encoder's maxrate plus audio); the master states the measured one."""
        return int(self.video_bitrate * _MAXRATE) + self.audio_bitrate


# name -> (short side, H.264 bitrate at 30 fps)
PRESETS: dict[str, tuple[int, int]] = {
    "2160p": (2160, 14_000_000),
    "1440p": (1440, 8_000_000),
    "1080p": (1080, 5_000_000),
    "720p": (720, 2_800_000),
    "480p": (480, 1_400_000),
    "360p": (360, 800_000),
    "240p": (240, 400_000),
}
DEFAULT_RENDITIONS = ("1080p", "720p", "480p", "360p")
AUDIO_BITRATE = 128_000  # one AAC rendition, shared by every video rendition
_MAXRATE = 1.1  # VBV peak over the average target


@dataclass(frozen=True)
class LadderOptions:
    renditions: tuple[str, ...] | None = None  # None: DEFAULT_RENDITIONS
    segment_seconds: int = 4
    segment_format: SegmentFormat = "fmp4"
    mp4: bool = False  # also one progressive MP4 of the top rung with audio (M4A for audio-only)

    def __post_init__(self) -> None:
        unknown = [name for name in self.renditions or () if name not in PRESETS]
        if unknown:
            raise Invalid(f"unknown rendition {', '.join(unknown)}; expected some of {', '.join(PRESETS)}")
        if self.renditions is not None and not self.renditions:
            raise Invalid("renditions must name at least one of " + ", ".join(PRESETS))
        if not isinstance(self.segment_seconds, int) or not 2 <= self.segment_seconds <= 10:
            raise Invalid(
                f"segment_seconds must be a whole number from 2 to 10, not {self.segment_seconds!r}"
            )
        if self.segment_format not in ("fmp4", "ts"):
            raise Invalid(f"segment_format must be 'fmp4' or 'ts', not {self.segment_format!r}")


@dataclass(frozen=True)
class Ladder:
    renditions: tuple[Rendition, ...]  # empty for an audio-only source
    audio: bool
    segment_seconds: int
    segment_format: SegmentFormat
    fps: float | None
    duration_s: float
    audio_bitrate: int = AUDIO_BITRATE
    #: the source's own frame rate: above 60 the output is decimated to `fps`; else timestamps pass
    source_fps: float | None = None
    mp4: bool = False
    stills: bool = True  # the poster and the storyboard (off only to measure what they cost)

    @property
    def audio_only(self) -> bool:
        return not self.renditions


def plan_ladder(info: MediaInfo, options: LadderOptions = LadderOptions()) -> Ladder:
    common = {
        "segment_seconds": options.segment_seconds,
        "segment_format": options.segment_format,
        "duration_s": info.duration_s,
        "mp4": options.mp4,
    }
    if not info.has_video:
        return Ladder(renditions=(), audio=info.has_audio, fps=None, **common)
    assert info.width and info.height, "probe() guarantees a picture size for video"
    fps = output_fps(info.fps)
    short = min(info.width, info.height)
    wanted = sorted({*(options.renditions or DEFAULT_RENDITIONS)}, key=lambda n: -PRESETS[n][0])
    fitting = [name for name in wanted if PRESETS[name][0] <= short]
    if not fitting:  # smaller than every requested preset: one rendition at the source's own size
        return Ladder(
            renditions=(_rendition(None, short - short % 2, (info.width, info.height), info, fps),),
            audio=info.has_audio,
            fps=fps,
            source_fps=info.fps,
            **common,
        )
    renditions, above = [], (info.width, info.height)
    standard = {side for side, _ in PRESETS.values()}
    if len(fitting) < len(wanted) and short not in standard and short > PRESETS[fitting[0]][0] + 1:
        # A preset was capped away and the source lies between standard heights (576 lines between 720
        # and 480): its own height is the top rung rather than a loss of resolution down to 480.
        renditions.append(_rendition(None, short - short % 2, above, info, fps))
        above = (renditions[-1].width, renditions[-1].height)
    for name in fitting:  # each scaled from the one above, as the ffmpeg command does
        renditions.append(_rendition(name, PRESETS[name][0], above, info, fps))
        above = (renditions[-1].width, renditions[-1].height)
    return Ladder(renditions=tuple(renditions), audio=info.has_audio, fps=fps, source_fps=info.fps, **common)


def output_fps(fps: float | None) -> float:
    """The constant output rate: the source's, halved until at most 60 (slow-motion phones shoot 240)."""
    if not fps or fps <= 0:
        return 30.0
    while fps > 60:
        fps /= 2
    return round(fps, 3)


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The size `scale=w='if(gt(iw,ih),-2,S)':h='if(gt(iw,ih),S,-2)'` gives: short side S, long side even."""
    if width > height:
        return _even_rescale(short_side, width, height), short_side
    return short_side, _even_rescale(short_side, height, width)


def _even_rescale(short_side: int, long_src: int, short_src: int) -> int:
    # ffmpeg: av_rescale(S, long, short * 2) * 2, rounding half away from zero
    return max(2, (2 * short_side * long_src + 2 * short_src) // (4 * short_src) * 2)


def _rendition(
    name: str | None, short_side: int, above: tuple[int, int], info: MediaInfo, fps: float
) -> Rendition:
    width, height = scaled_size(*above, short_side)
    if name is not None:
        _, video = PRESETS[name]
    else:  # scale the bitrate of the preset just below by picture area
        below = [p for p in PRESETS.values() if p[0] <= short_side] or [PRESETS["240p"]]
        base_short, base_video = max(below)
        video = max(150_000, int(base_video * (short_side / base_short) ** 2))
    if fps > 31:
        video = int(video * 1.5)  # 50/60 fps needs more bits, not twice as many
    return Rendition(
        name=name or f"{short_side}p",
        width=width,
        height=height,
        video_bitrate=video,
        audio_bitrate=AUDIO_BITRATE if info.has_audio else 0,
        fps=fps,
    )
