"""probe() on both paths (ffprobe JSON; `ffmpeg -i` stderr of Debian 5.1 and the static 9.0.2) agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from fluxstudio.errors import MediaError
from fluxstudio.media import MediaInfo, Tools, find_tools, probe

CASES = {
    # name: (make_clip kwargs, expected fields)
    "landscape": ({}, {"width": 320, "height": 240, "rotation": 0, "has_audio": True, "fps": 30}),
    "portrait": ({"size": "240x320"}, {"width": 240, "height": 320, "rotation": 0}),
    "rotated_plus_90": ({"rotation": 90}, {"width": 240, "height": 320, "rotation": 90}),
    "rotated_minus_90": ({"rotation": -90}, {"width": 240, "height": 320, "rotation": -90}),
    "rotated_180": ({"rotation": 180}, {"width": 320, "height": 240, "rotation": 180}),
    "audio_only": ({"container": "wav"}, {"has_video": False, "width": None, "audio_codec": "pcm_s16le"}),
    "video_only": ({"audio": False, "fps": 25}, {"has_audio": False, "audio_codec": None, "fps": 25}),
    "vfr": (
        {"audio": False, "extra": ("-vf", "select='lt(n,30)+not(mod(n,3))'", "-fps_mode", "vfr")},
        {"variable_frame_rate": True},
    ),
}


async def probe_all(path: Path, tools: Tools, debian_tools: Tools, static_tools: Tools) -> list[MediaInfo]:
    return [
        await probe(path, tools, use_ffprobe=True),
        await probe(path, debian_tools, use_ffprobe=False),
        await probe(path, static_tools, use_ffprobe=False),
    ]


@pytest.mark.parametrize("case", list(CASES))
async def test_probe_paths_agree(case, make_clip, tools, debian_tools, static_tools) -> None:
    kwargs, expected = CASES[case]
    path = make_clip(case, **kwargs)
    by_ffprobe, by_debian, by_static = await probe_all(path, tools, debian_tools, static_tools)
    for info in (by_ffprobe, by_debian, by_static):
        for field, value in expected.items():
            assert getattr(info, field) == value, (field, info)
        assert info.duration_s == pytest.approx(2.0, abs=0.1)
        assert (info.width, info.height, info.rotation, info.has_audio, info.has_video) == (
            by_ffprobe.width,
            by_ffprobe.height,
            by_ffprobe.rotation,
            by_ffprobe.has_audio,
            by_ffprobe.has_video,
        )
        assert (info.video_codec, info.audio_codec) == (by_ffprobe.video_codec, by_ffprobe.audio_codec)
        assert info.variable_frame_rate == by_ffprobe.variable_frame_rate
        if info.fps is not None:
            assert info.fps == pytest.approx(by_ffprobe.fps, rel=0.02)


async def test_as_dict_is_the_api_media_object(make_clip, tools) -> None:
    info = await probe(make_clip(), tools)
    assert info.as_dict() == {
        "duration_s": info.duration_s,
        "width": 320,
        "height": 240,
        "fps": 30.0,
        "video_codec": "h264",
        "audio_codec": "aac",
        "has_video": True,
        "has_audio": True,
        "rotation": 0,
    }


async def test_cover_art_is_not_video(tmp_path, make_clip, tools, static_tools) -> None:
    from tests.fixtures.media import run_ffmpeg

    song, cover = make_clip("song", container="mp3"), make_clip("cover", container="mp4", audio=False)
    with_art = tmp_path / "with_art.mp3"
    run_ffmpeg(
        "-i",
        str(song),
        "-i",
        str(cover),
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-frames:v",
        "1",
        "-c:a",
        "copy",
        "-c:v",
        "mjpeg",
        "-disposition:v",
        "attached_pic",
        str(with_art),
    )
    for info in (await probe(with_art, tools), await probe(with_art, static_tools)):
        assert info.has_audio and not info.has_video and info.width is None


def test_find_tools_prefers_explicit_paths_then_path_then_imageio(monkeypatch, tmp_path) -> None:
    assert find_tools("/usr/bin/ffmpeg", "/usr/bin/ffprobe") == Tools("/usr/bin/ffmpeg", "/usr/bin/ffprobe")
    with pytest.raises(MediaError):
        find_tools(str(tmp_path / "missing-ffmpeg"))
    monkeypatch.setenv("PATH", str(tmp_path))
    fallback = find_tools()
    assert "imageio_ffmpeg" in fallback.ffmpeg and fallback.ffprobe is None
