"""Where ffmpeg and ffprobe are: an explicit path, else PATH, else the imageio-ffmpeg wheel's binary."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from fluxstudio.errors import MediaError


@dataclass(frozen=True)
class Tools:
    ffmpeg: str
    ffprobe: str | None  # None: probe by parsing `ffmpeg -i` (the imageio wheel ships no ffprobe)


def find_tools(ffmpeg_path: str | None = None, ffprobe_path: str | None = None) -> Tools:
    ffmpeg = _executable(ffmpeg_path, "ffmpeg") if ffmpeg_path else shutil.which("ffmpeg")
    if ffmpeg is None:
        ffmpeg = _imageio_ffmpeg()
    if ffmpeg is None:
        raise MediaError("ffmpeg not found: set FFMPEG_PATH, put ffmpeg on PATH or install imageio-ffmpeg")
    ffprobe = _executable(ffprobe_path, "ffprobe") if ffprobe_path else shutil.which("ffprobe")
    return Tools(ffmpeg=ffmpeg, ffprobe=ffprobe)


def _executable(path: str, what: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise MediaError(f"{what} at {path!r} is not an executable file")
    return path


def _imageio_ffmpeg() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None
