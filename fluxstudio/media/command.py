"""The one ffmpeg command that turns a source into every rendition of a ladder.

Decode once; scale by the short side (portrait-safe, even sizes) in a cascade that `split`s off each
rendition; encode with libx264, keyframes forced at the same instants in every rendition
(`-sc_threshold 0`, a GOP longer than a segment so forced keyframes are the only regular ones); mux with
the HLS muxer, one `-var_stream_map` entry per rendition. Audio is one AAC rendition shared by all.
Input and output `-t` bound what a source that lies about its length can make ffmpeg produce.
"""

from __future__ import annotations

from pathlib import Path

from fluxstudio.media.guards import DEFAULT_LIMITS, Limits, StagedInput, input_args, input_url
from fluxstudio.media.ladder import Ladder
from fluxstudio.media.playlists import h264_level
from fluxstudio.media.tools import Tools

_MAXRATE = 1.1  # VBV peak over the target bitrate
_BUFSIZE = 2.0  # VBV buffer, in seconds of the target bitrate


def budget_s(ladder: Ladder) -> float:
    """How much input and output time ffmpeg may produce: a source that lies about its length stops here."""
    return ladder.duration_s * 1.01 + 1.0


AUDIO_NAME = "audio"  # the audio rendition's folder
AUDIO_GROUP = "audio"
AUDIO_GROUP_ARG = f"agroup:{AUDIO_GROUP},"


# fmt: off
def ffmpeg_argv(
    tools: Tools, staged: StagedInput, out_dir: Path, ladder: Ladder, *,
    preset: str = "veryfast", threads: int = 0, limits: Limits = DEFAULT_LIMITS,
) -> list[str]:
    budget = f"{budget_s(ladder):.3f}"
    argv = [
        tools.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
        "-progress", "pipe:1", "-stats_period", "0.5",
        *input_args(limits), "-t", budget, "-i", input_url(staged.path),
    ]
    if ladder.renditions:
        argv += _video_args(ladder, preset, threads)
    if ladder.audio:
        # AAC is encoded once, as its own rendition that every video rendition plays with (an HLS audio
        # group): four AAC encoders in ffmpeg's main thread cost more than a tenth of the whole job.
        argv += ["-map", "0:a:0", "-c:a", "aac", "-b:a", str(ladder.audio_bitrate),
                 "-ac", "2", "-ar", "48000"]
    streams = [f"v:{i},{AUDIO_GROUP_ARG}name:{r.name}" if ladder.audio else f"v:{i},name:{r.name}"
               for i, r in enumerate(ladder.renditions)]
    if ladder.audio:
        streams.append(f"a:0,{AUDIO_GROUP_ARG if ladder.renditions else ''}name:{AUDIO_NAME}")
    fmp4 = ladder.segment_format == "fmp4"
    argv += [
        "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1", "-t", budget,
        "-f", "hls", "-hls_time", str(ladder.segment_seconds), "-hls_playlist_type", "vod",
        "-hls_flags", "independent_segments+temp_file",
        "-hls_segment_type", "fmp4" if fmp4 else "mpegts", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", str(out_dir / "%v" / ("seg_%05d.m4s" if fmp4 else "seg_%05d.ts")),
        "-var_stream_map", " ".join(streams), str(out_dir / "%v" / "index.m3u8"),
    ]
    return argv


def _video_args(ladder: Ladder, preset: str, threads: int) -> list[str]:
    fps = ladder.fps or 30.0
    chains, args, pad = [], [], "[0:v:0]"
    for i, r in enumerate(ladder.renditions):
        side = min(r.width, r.height)
        # A cascade: each rendition is scaled from the one above it, not from the source, which costs
        # far less than four full-size scales. Short side set, aspect kept, long side even; autorotate
        # has already turned the picture upright. The ladder planned the same sizes, step by step.
        chain = f"{pad}scale=w='if(gt(iw,ih),-2,{side})':h='if(gt(iw,ih),{side},-2)':flags=bilinear"
        chain += ",format=yuv420p" if i == 0 else ""
        last = i == len(ladder.renditions) - 1
        chains.append(chain + (f"[v{i}]" if last else f",split=2[v{i}][c{i}]"))
        pad = f"[c{i}]"
        args += [
            "-map", f"[v{i}]", f"-b:v:{i}", str(r.video_bitrate),
            f"-maxrate:v:{i}", str(int(r.video_bitrate * _MAXRATE)),
            f"-bufsize:v:{i}", str(int(r.video_bitrate * _BUFSIZE)),
            # stated, so the master's CODECS attribute says what the stream really is
            f"-level:v:{i}", f"{h264_level(r.width, r.height, fps) / 10:.1f}",
        ]
    gop = max(2, round(fps * ladder.segment_seconds * 2))
    return [
        "-filter_complex", ";".join(chains), *args,
        "-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-threads", str(threads),
        "-r", f"{fps:g}", "-fps_mode", "cfr", "-g", str(gop), "-sc_threshold", "0",
        "-force_key_frames", f"expr:gte(t,n_forced*{ladder.segment_seconds})",
    ]
# fmt: on
