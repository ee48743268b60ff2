"""Transcode one source into an HLS ladder with ONE ffmpeg process: decode once, split, scale, encode all.

Every rendition is encoded in lockstep with keyframes forced at the same instants, so segments line up
across renditions and players can switch. On any failure or cancellation the process group is killed and
the output folder removed; the master playlist is written only after ffmpeg exited 0 and every rendition
was checked, so a published master never points at a half-written stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from fluxstudio.errors import Invalid, MediaError, UnreadableMedia
from fluxstudio.media import extras, process
from fluxstudio.media.command import AUDIO_GROUP, AUDIO_NAME, budget_s, ffmpeg_argv
from fluxstudio.media.guards import DEFAULT_LIMITS, Limits, StagedInput
from fluxstudio.media.ladder import Ladder
from fluxstudio.media.playlists import (
    AAC_LC,
    ShortOutput,
    Variant,
    h264_codecs,
    h264_level,
    measure,
    read_media_playlist,
    write_master,
)
from fluxstudio.media.progress import Progress, ProgressReader
from fluxstudio.media.tools import Tools

ProgressCallback = Callable[[Progress], Awaitable[None] | None]
_HEARTBEAT_S = 1.0
# stderr phrases that mean the input, not the machine, is at fault
_INPUT_FAULTS = (
    "Invalid data found",
    "moov atom not found",
    "could not find codec parameters",
    "exceeds specified max pixel",
    "not on whitelist",
    "Error while decoding",
    "corrupt",
    "Output file does not contain any stream",
    "Stream map",
    "matches no streams",
)


@dataclass(frozen=True)
class HlsResult:
    master: Path
    variants: tuple[Variant, ...]  # the master's variants, highest first; .playlist is relative to out_dir
    audio: Variant | None  # the audio rendition every video variant plays with (None: no audio or audio-only)
    duration_s: float
    files: tuple[str, ...]  # every file written, relative to out_dir, master last
    poster: str | None = None  # relative to out_dir, like the rest
    storyboard: str | None = None  # the WebVTT; its sprite is among `files`
    mp4: str | None = None

    @property
    def playlists(self) -> dict[str, str]:
        return {v.name: v.playlist for v in (*self.variants, *([self.audio] if self.audio else []))}


async def transcode_hls(
    source: Path,
    out_dir: Path,
    ladder: Ladder,
    tools: Tools,
    *,
    on_progress: ProgressCallback | None = None,
    preset: str = "veryfast",
    threads: int = 0,
    timeout_s: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
    work_dir: Path | None = None,
    on_start: Callable[[int], None] | None = None,
) -> HlsResult:
    """`on_start` receives ffmpeg's pid (it is also its process group id), for supervision and tests."""
    # ffmpeg runs in the private input folder, so a relative output path would land there.
    out_dir = out_dir.absolute()
    if any(c in str(out_dir) for c in "%:|[]\\'"):
        raise Invalid("the output folder must not contain any of % : | [ ] \\ ' (ffmpeg's muxers read them)")
    if not (ladder.renditions or ladder.audio):
        raise UnreadableMedia("nothing to transcode: no video and no audio")
    existed = out_dir.exists()
    if existed and any(out_dir.iterdir()):
        raise Invalid(f"the output folder {out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: StagedInput | None = None
    try:
        staged = await asyncio.to_thread(StagedInput, source, work_dir)
        await _encode(
            staged, out_dir, ladder, tools, on_progress, preset, threads, timeout_s, limits, on_start
        )
        board = extras.plan_storyboard(ladder)
        if board is not None:
            board = await extras.compose_sprite(tools, out_dir, board)
        result = _publish(out_dir, ladder, board)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        if existed:
            out_dir.mkdir(exist_ok=True)
        raise
    finally:
        if staged is not None:
            staged.close()
    if on_progress is not None:
        await _call(on_progress, Progress(1.0, round(result.duration_s, 3), None, None, 0.0))
    return result


def margin_s(ladder: Ladder) -> float:
    return max(0.5, 0.01 * ladder.duration_s)


async def _encode(
    staged: StagedInput,
    out_dir: Path,
    ladder: Ladder,
    tools: Tools,
    on_progress: ProgressCallback | None,
    preset: str,
    threads: int,
    timeout_s: float | None,
    limits: Limits,
    on_start: Callable[[int], None] | None,
) -> None:
    reader = ProgressReader(ladder.duration_s, cap_s=budget_s(ladder))
    emitted = [time.monotonic()]

    async def emit(progress: Progress) -> None:
        emitted[0] = time.monotonic()
        if on_progress is not None:
            await _call(on_progress, progress)

    async def on_line(line: str) -> None:
        progress = reader.feed(line)
        if progress is not None:
            await emit(progress)

    async def watchdog() -> str | None:
        now = time.monotonic()
        if now - reader.last_advance > limits.stall_timeout_s:
            return f"ffmpeg made no progress for {limits.stall_timeout_s:g} s"
        if now - emitted[0] >= _HEARTBEAT_S:  # keep the promised once-a-second beat while ffmpeg starts
            await emit(reader.last)
        return None

    argv = ffmpeg_argv(tools, staged, out_dir, ladder, preset=preset, threads=threads, limits=limits)
    cpu = None if timeout_s is None else int(timeout_s * (os.cpu_count() or 1)) + 10
    try:
        done = await process.run(
            argv,
            cwd=staged.dir,
            limits=limits,
            timeout_s=timeout_s,
            on_stdout_line=on_line,
            watchdog=watchdog,
            cpu_seconds=cpu,
            on_start=on_start,
        )
    except process.Stopped as exc:
        raise MediaError(f"transcode stopped: {exc.reason}", stderr_tail=exc.stderr_tail) from None
    except OSError as exc:
        raise MediaError(f"cannot start ffmpeg: {exc}") from exc
    if done.exit_code != 0:
        fault = UnreadableMedia if any(p in done.stderr_tail for p in _INPUT_FAULTS) else MediaError
        raise fault("ffmpeg failed", exit_code=done.exit_code, stderr_tail=done.stderr_tail)
    if not reader.ended:
        raise MediaError(
            "ffmpeg exited without finishing its progress report", exit_code=0, stderr_tail=done.stderr_tail
        )


def _publish(out_dir: Path, ladder: Ladder, board: extras.Storyboard | None) -> HlsResult:
    """Check every rendition is whole, then write the master from what was measured."""
    audio = _measured(out_dir, AUDIO_NAME, ladder) if ladder.audio else None
    variants = []
    for r in ladder.renditions:
        video = _measured(out_dir, r.name, ladder)
        level = h264_level(r.width, r.height, ladder.fps or 30.0)
        # A player fetches video and audio together: the variant's rates are their sums.
        variants.append(
            dataclasses.replace(
                video,
                width=r.width,
                height=r.height,
                fps=ladder.fps,
                codecs=h264_codecs(level, audio is not None),
                bandwidth=video.bandwidth + (audio.bandwidth if audio else 0),
                average_bandwidth=video.average_bandwidth + (audio.average_bandwidth if audio else 0),
                audio_group=AUDIO_GROUP if audio else None,
            )
        )
    if audio is not None and not variants:  # audio-only source: the audio stream is the one variant
        variants, audio = [audio], None
    elif audio is not None:
        audio = dataclasses.replace(audio, audio_group=AUDIO_GROUP)
    master = write_master(out_dir, variants, audio, fmp4=ladder.segment_format == "fmp4")
    poster, storyboard, mp4 = _extras(out_dir, ladder, board)
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file() and p != master)
    everything = [*variants, *([audio] if audio else [])]
    return HlsResult(
        master=master,
        variants=tuple(variants),
        audio=audio,
        duration_s=max(v.duration_s for v in everything),
        files=(*files, "master.m3u8"),
        poster=poster,
        storyboard=storyboard,
        mp4=mp4,
    )


def _extras(
    out_dir: Path, ladder: Ladder, board: extras.Storyboard | None
) -> tuple[str | None, str | None, str | None]:
    """Check what rode along with the ladder, and write the storyboard's WebVTT for its sprite."""
    poster = extras.POSTER if extras.has_poster(ladder) else None
    mp4 = extras.mp4_name(ladder)
    for name in (poster, mp4, extras.SPRITE if board else None):
        if name is not None and not (out_dir / name).is_file():
            raise MediaError(f"ffmpeg wrote no {name}")
    storyboard = None
    if board is not None:
        storyboard = extras.write_storyboard_vtt(out_dir, board).name
    return poster, storyboard, mp4


def early_master(out_dir: Path, ladder: Ladder) -> Path | None:
    """While ffmpeg runs: once every rendition has a segment, a master with the nominal rates (the
    final one, written after the encode, states the measured ones). None until then."""
    names = [r.name for r in ladder.renditions] + ([AUDIO_NAME] if ladder.audio else [])
    counts = {}
    for name in names:
        path = out_dir / name / "index.m3u8"
        counts[name] = len(read_media_playlist(path).segments) if path.is_file() else 0
    if min(counts.values(), default=0) == 0:
        return None
    fps = ladder.fps or 30.0
    audio = None
    if ladder.audio:
        audio = Variant(
            AUDIO_NAME,
            f"{AUDIO_NAME}/index.m3u8",
            ladder.audio_bitrate,
            ladder.audio_bitrate,
            AAC_LC,
            None,
            None,
            None,
            counts[AUDIO_NAME],
            0.0,
        )
    variants = [
        Variant(
            r.name,
            f"{r.name}/index.m3u8",
            r.bandwidth,
            r.video_bitrate + r.audio_bitrate,
            h264_codecs(h264_level(r.width, r.height, fps), audio is not None),
            r.width,
            r.height,
            ladder.fps,
            counts[r.name],
            0.0,
            AUDIO_GROUP if audio else None,
        )
        for r in ladder.renditions
    ]
    if audio is not None and not variants:
        variants, audio = [audio], None
    elif audio is not None:
        audio = dataclasses.replace(audio, audio_group=AUDIO_GROUP)
    return write_master(out_dir, variants, audio, fmp4=ladder.segment_format == "fmp4")


def _measured(out_dir: Path, name: str, ladder: Ladder) -> Variant:
    playlist = f"{name}/index.m3u8"
    try:
        media, peak, average = measure(out_dir, playlist, ladder.duration_s, margin_s(ladder))
    except ShortOutput as exc:
        raise UnreadableMedia(f"{exc.message}: the source is truncated or corrupt") from None
    return Variant(
        name=name,
        playlist=playlist,
        bandwidth=peak,
        average_bandwidth=average,
        codecs=AAC_LC,
        width=None,
        height=None,
        fps=None,
        segments=len(media.segments),
        duration_s=round(media.duration_s, 3),
    )


async def _call(callback: ProgressCallback, progress: Progress) -> None:
    result = callback(progress)
    if inspect.isawaitable(result):
        await result
