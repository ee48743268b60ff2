"""The MediaInfo fields both probe readers fill, built one way: ffprobe's JSON and `ffmpeg -i`'s report
differ in how they say a stream's size, rate and rotation, not in what the product makes of them."""

from __future__ import annotations


def blank_fields(duration_s: float, format_name: str) -> dict[str, object]:
    """Every MediaInfo field, for a file in which no stream has been found yet."""
    return {
        "duration_s": duration_s,
        "format_name": format_name,
        "has_audio": False,
        "audio_codec": None,
        "has_video": False,
        "video_codec": None,
        "width": None,
        "height": None,
        "fps": None,
        "rotation": 0,
        "variable_frame_rate": False,
    }


def video_fields(
    codec: str | None,
    width: int | None,
    height: int | None,
    rotation: int,
    avg_fps: float | None,
    real_fps: float | None,
) -> dict[str, object]:
    """The video stream's fields: display size (a quarter turn swaps the stored one), frame rate, VFR.

    The average rate is the one played; a real (base) rate far from it means a variable frame rate.
    """
    if rotation in (90, -90):
        width, height = height, width
    fps = avg_fps or real_fps
    return {
        "has_video": True,
        "video_codec": codec,
        "width": width,
        "height": height,
        "rotation": rotation,
        "fps": round(fps, 3) if fps else None,
        "variable_frame_rate": bool(avg_fps and real_fps and abs(avg_fps - real_fps) > 0.01 * real_fps),
    }


def normalize_rotation(degrees: float) -> int:
    """Round to a quarter turn in (-180, 180]."""
    quarter = round(degrees / 90) % 4
    return {0: 0, 1: 90, 2: 180, 3: -90}[quarter]
