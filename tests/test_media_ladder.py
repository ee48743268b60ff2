"""Ladder planning is pure: no ffmpeg, just the rules (never upscale, short side, even sizes)."""

from __future__ import annotations

import pytest

from fluxstudio.errors import Invalid
from fluxstudio.media import LadderOptions, MediaInfo, plan_ladder
from fluxstudio.media.ladder import output_fps, scaled_size
from fluxstudio.media.playlists import h264_codecs, h264_level


def info(
    width: int | None = 1920,
    height: int | None = 1080,
    *,
    audio: bool = True,
    fps: float = 30.0,
    rotation: int = 0,
) -> MediaInfo:
    video = width is not None
    return MediaInfo(
        duration_s=10.0,
        width=width,
        height=height,
        fps=fps if video else None,
        video_codec="h264" if video else None,
        audio_codec="aac" if audio else None,
        has_video=video,
        has_audio=audio,
        rotation=rotation,
        format_name="mov",
    )


def sizes(ladder) -> list[tuple[str, int, int]]:
    return [(r.name, r.width, r.height) for r in ladder.renditions]


def test_default_ladder_for_1080p_source() -> None:
    ladder = plan_ladder(info())
    assert sizes(ladder) == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
    ]
    assert ladder.audio and ladder.segment_seconds == 4 and ladder.segment_format == "fmp4"
    assert [r.video_bitrate for r in ladder.renditions] == sorted(
        (r.video_bitrate for r in ladder.renditions), reverse=True
    )


def test_never_upscales() -> None:
    assert sizes(plan_ladder(info(1280, 720))) == [
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
    ]
    asked = LadderOptions(renditions=("2160p", "1080p", "240p"))
    assert sizes(plan_ladder(info(1280, 720), asked)) == [("240p", 426, 240)]


def test_portrait_keeps_orientation_and_plans_by_short_side() -> None:
    ladder = plan_ladder(info(1080, 1920))  # a phone held upright, rotation already applied by probe
    assert sizes(ladder)[:2] == [("1080p", 1080, 1920), ("720p", 720, 1280)]
    assert all(r.height > r.width for r in ladder.renditions)


def test_odd_sizes_become_even() -> None:
    ladder = plan_ladder(info(853, 481), LadderOptions(renditions=("480p", "360p")))
    assert sizes(ladder) == [("480p", 852, 480), ("360p", 640, 360)]  # 360p is scaled from 480p
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in ladder.renditions)


def test_scaled_size_matches_ffmpegs_minus_two() -> None:
    # values ffmpeg's scale=-2:H gives for these inputs
    assert scaled_size(1920, 1080, 360) == (640, 360)
    assert scaled_size(640, 272, 240) == (564, 240)
    assert scaled_size(1080, 1920, 480) == (480, 854)


def test_tiny_source_gets_one_rendition_at_its_own_even_size() -> None:
    ladder = plan_ladder(info(177, 145))
    assert sizes(ladder) == [("144p", 176, 144)]
    assert 150_000 <= ladder.renditions[0].video_bitrate < 400_000


def test_audio_only_source_gets_audio_only_stream() -> None:
    ladder = plan_ladder(info(None, None, audio=True))
    assert ladder.renditions == () and ladder.audio and ladder.audio_only


def test_video_only_source_has_no_audio_bitrate() -> None:
    ladder = plan_ladder(info(audio=False))
    assert not ladder.audio and all(r.audio_bitrate == 0 for r in ladder.renditions)


def test_frame_rate_is_capped_and_bandwidth_counts_audio() -> None:
    assert output_fps(240) == 60 and output_fps(29.97) == 29.97 and output_fps(None) == 30
    rendition = plan_ladder(info(fps=59.94)).renditions[0]
    assert rendition.fps == 59.94 and rendition.bandwidth > rendition.video_bitrate + rendition.audio_bitrate


@pytest.mark.parametrize(
    "options",
    [
        {"renditions": ("720p", "999p")},
        {"renditions": ()},
        {"segment_seconds": 1},
        {"segment_seconds": 11},
        {"segment_seconds": 4.5},
        {"segment_format": "dash"},
    ],
)
def test_option_validation(options: dict) -> None:
    with pytest.raises(Invalid):
        LadderOptions(**options)


def test_h264_levels_and_codecs() -> None:
    assert h264_level(1920, 1080, 30) == 40 and h264_level(1280, 720, 30) == 31
    assert h264_level(1280, 720, 60) == 32 and h264_level(3840, 2160, 30) == 51
    assert h264_codecs(40, audio=True) == "avc1.640028,mp4a.40.2"
