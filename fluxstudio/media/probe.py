"""What an upload is: duration, display size, frame rate, codecs, rotation.

Two readers give the same MediaInfo: ffprobe's JSON when ffprobe exists, else `ffmpeg -i`'s stderr
(the static ffmpeg of the imageio wheel has no ffprobe). Both run behind the same guards as a transcode,
and anything that is not audio/video we accept raises UnreadableMedia.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from fluxstudio.errors import MediaError, UnreadableMedia
from fluxstudio.media import process
from fluxstudio.media.guards import DEFAULT_LIMITS, Limits, StagedInput, input_args, input_url
from fluxstudio.media.probe_fields import blank_fields, normalize_rotation, video_fields
from fluxstudio.media.probe_stderr import parse_ffmpeg_stderr
from fluxstudio.media.tools import Tools

_STDERR_BYTES = 256 * 1024  # the whole `ffmpeg -i` report, not just its tail


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    width: int | None  # display size: rotation applied
    height: int | None
    fps: float | None
    video_codec: str | None
    audio_codec: str | None
    has_video: bool
    has_audio: bool
    rotation: int  # degrees, display-matrix convention, one of 0, 90, -90, 180
    format_name: str
    variable_frame_rate: bool = False

    def as_dict(self) -> dict[str, object]:
        """The API's `media` object."""
        data = asdict(self)
        del data["format_name"], data["variable_frame_rate"]
        return data

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> MediaInfo:
        """Back from a stored probe result (every field, or the API's `media` object): no second probe."""
        names = {f.name for f in fields(cls)}
        return cls(**{"format_name": "", **{k: v for k, v in data.items() if k in names}})


async def probe(
    path: Path,
    tools: Tools,
    *,
    use_ffprobe: bool = True,
    timeout_s: float = 30,
    limits: Limits = DEFAULT_LIMITS,
    work_dir: Path | None = None,
) -> MediaInfo:
    staged = await asyncio.to_thread(StagedInput, path, work_dir)
    try:
        if tools.ffprobe and use_ffprobe:
            argv = [
                tools.ffprobe,
                "-v",
                "error",
                "-hide_banner",
                *input_args(limits),
                "-show_format",
                "-show_streams",
                "-of",
                "json",
                input_url(staged.path),
            ]
            fields = _parse_ffprobe(await _run(argv, staged.dir, limits, timeout_s, stdout=True))
        else:
            argv = [
                tools.ffmpeg,
                "-hide_banner",
                "-nostdin",
                *input_args(limits),
                "-i",
                input_url(staged.path),
            ]
            fields = parse_ffmpeg_stderr(await _run(argv, staged.dir, limits, timeout_s, stdout=False))
    finally:
        staged.close()
    return _checked(MediaInfo(**fields), limits)


async def _run(argv: list[str], cwd: Path, limits: Limits, timeout_s: float, *, stdout: bool) -> str:
    try:
        done = await process.run(
            argv,
            cwd=cwd,
            limits=limits,
            timeout_s=timeout_s,
            cpu_seconds=int(timeout_s) + 1,
            tail_bytes=_STDERR_BYTES,
        )
    except process.Stopped as exc:
        raise UnreadableMedia(
            f"probing the upload took too long: {exc.reason}", stderr_tail=exc.stderr_tail
        ) from None
    except OSError as exc:
        raise MediaError(f"cannot start {argv[0]}: {exc}") from exc
    # `ffmpeg -i` alone always exits 1, so for it the header is what counts.
    failed = done.exit_code != 0 if stdout else "Input #0" not in done.stderr_tail
    if failed:
        raise UnreadableMedia(
            _refusal(done.stderr_tail, limits), exit_code=done.exit_code, stderr_tail=done.stderr_tail[-2000:]
        )
    if stdout:
        return done.stdout
    return done.stderr_tail


def _refusal(stderr: str, limits: Limits) -> str:
    if "exceeds specified max pixel" in stderr:
        return f"the picture is larger than {limits.max_pixels} pixels"
    return "not audio or video that we accept"


def _parse_ffprobe(text: str) -> dict[str, object]:
    data = json.loads(text or "{}")
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video = next(
        (
            s
            for s in streams
            if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _number(fmt.get("duration"))
    if duration is None:
        duration = max((_number(s.get("duration")) or 0.0 for s in streams), default=0.0)
    fields = blank_fields(duration or 0.0, fmt.get("format_name", ""))
    if audio is not None:
        fields.update(has_audio=True, audio_codec=audio.get("codec_name"))
    if video is not None:
        fields.update(
            video_fields(
                video.get("codec_name"),
                video.get("width"),
                video.get("height"),
                _ffprobe_rotation(video),
                _rate(video.get("avg_frame_rate")),
                _rate(video.get("r_frame_rate")),
            )
        )
    return fields


def _ffprobe_rotation(stream: dict) -> int:
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return normalize_rotation(float(side["rotation"]))
    tag = (stream.get("tags") or {}).get("rotate")  # old muxers: clockwise, the opposite sign
    return normalize_rotation(-float(tag)) if tag else 0


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "N/A"):
        return None
    num, _, den = text.partition("/")
    try:
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return round(value, 3) if value > 0 else None


def _number(text: object) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _checked(info: MediaInfo, limits: Limits) -> MediaInfo:
    if not (info.has_video or info.has_audio):
        raise UnreadableMedia(f"no audio or video stream in this {info.format_name or 'file'}")
    if info.duration_s <= 0:
        raise UnreadableMedia("the upload has no duration (raw or broken stream)")
    if info.duration_s > limits.max_duration_s:
        raise UnreadableMedia(
            f"the upload lasts {info.duration_s:.0f} s; at most {limits.max_duration_s:.0f} s is accepted"
        )
    if info.has_video:
        if not (info.width and info.height):
            raise UnreadableMedia("the video stream has no picture size")
        if info.width * info.height > limits.max_pixels:
            raise UnreadableMedia(
                f"the picture is {info.width}x{info.height}; at most {limits.max_pixels} pixels are accepted"
            )
    return info
