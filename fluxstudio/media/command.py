"""The one ffmpeg command that turns a source into every rendition of a ladder.

Decode once; scale by the short side (portrait-safe, even sizes) in a cascade that `split`s off each
rendition; encode with libx264, keyframes forced at the same instants in every rendition
(`-sc_threshold 0`, a GOP longer than a segment so forced keyframes are the only regular ones); mux with
the HLS muxer, one `-var_stream_map` entry per rendition. Audio is one AAC rendition shared by all.
Input and output `-t` bound what a source that lies about its length can make ffmpeg produce.

The extras ride the same decode: the HLS muxer and the optional MP4 are slaves of one `tee` output, so
the MP4 reuses the top rung's encoded packets (no second encode), and the poster and the storyboard
tiles are two small image outputs split off the cascade (`select` one frame; `fps=1/N,scale`). The
tiles are joined into one sprite afterwards (`extras.compose_sprite`, a few kilobytes of our own
JPEGs): a `tile` filter would hold its only frame until the end, and ffmpeg reports no progress until
every output has had a frame.

Watch while transcoding: the first segment of every video rendition is 1 s (keyframes forced at 0, 1,
then every segment), so every rendition has a segment about a second after ffmpeg starts; in one process
the renditions move in lockstep, so a 4 s first segment would wait for 4 s of the 1080p encode.
Timestamps pass through (`-fps_mode vfr`): a variable-frame-rate source keeps its timing and length
instead of gaining duplicated frames; `-r` is given only to decimate sources above 60 fps.
"""

from __future__ import annotations

from pathlib import Path

from fluxstudio.media import extras
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
    board = extras.plan_storyboard(ladder)
    argv = [
        tools.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
        "-progress", "pipe:1", "-stats_period", "0.5",
        *input_args(limits), "-t", budget, "-i", input_url(staged.path),
    ]
    if ladder.renditions:
        argv += _video_args(ladder, preset, threads, board is not None)
    if ladder.audio:
        # AAC is encoded once, as its own rendition that every video rendition plays with (an HLS audio
        # group): four AAC encoders in ffmpeg's main thread cost more than a tenth of the whole job.
        argv += ["-map", "0:a:0", "-c:a", "aac", "-b:a", str(ladder.audio_bitrate),
                 "-ac", "2", "-ar", "48000"]
    argv += [*_CLEAN, "-t", budget, "-f", "tee", _tee(out_dir, ladder)]
    # Image outputs must get a frame at once: ffmpeg prints no progress until every output has started.
    if extras.has_poster(ladder):
        argv += ["-map", "[poster]", *_CLEAN, "-t", budget, "-f", "image2", "-update", "1", "-q:v", "3",
                 str(out_dir / extras.POSTER)]
    if board is not None:
        argv += ["-map", "[sprite]", *_CLEAN, "-t", budget, "-f", "image2", "-q:v", "5",
                 str(out_dir / extras.TILES)]
    return argv


_CLEAN = ["-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1"]


def first_segment_s(ladder: Ladder) -> int:
    """1 s for video (see the module docstring); audio-only encodes so fast that it needs no head start."""
    return 1 if ladder.renditions and ladder.segment_seconds > 1 else ladder.segment_seconds


def _tee(out_dir: Path, ladder: Ladder) -> str:
    streams = [f"v:{i},{AUDIO_GROUP_ARG}name:{r.name}" if ladder.audio else f"v:{i},name:{r.name}"
               for i, r in enumerate(ladder.renditions)]
    if ladder.audio:
        streams.append(f"a:0,{AUDIO_GROUP_ARG if ladder.renditions else ''}name:{AUDIO_NAME}")
    fmp4 = ladder.segment_format == "fmp4"
    # The HLS muxer cuts at a keyframe once the stream's time passes n * hls_time: with 1 s and keyframes
    # at 0, 1, S, 2S... the segments are 1, S-1, S, S... long.
    hls = {
        "f": "hls", "hls_time": str(first_segment_s(ladder)), "hls_playlist_type": "event",
        "hls_flags": "independent_segments+temp_file",
        "hls_segment_type": "fmp4" if fmp4 else "mpegts", "hls_fmp4_init_filename": "init.mp4",
        "hls_segment_filename": str(out_dir / "%v" / ("seg_%05d.m4s" if fmp4 else "seg_%05d.ts")),
        "var_stream_map": " ".join(streams),
    }
    slaves = [_slave(hls, str(out_dir / "%v" / "index.m3u8"))]
    if (name := extras.mp4_name(ladder)) is not None:
        mp4 = {"f": "mp4", "movflags": "+faststart", "select": "v:0,a" if ladder.renditions else "a"}
        if not ladder.audio:
            mp4["select"] = "v:0"
        slaves.append(_slave(mp4, str(out_dir / name)))
    return "|".join(slaves)


def _slave(options: dict[str, str], target: str) -> str:
    """One tee slave: `[k=v:k=v]target`, each value escaped for the tee's two levels of parsing."""
    return "[" + ":".join(f"{k}={_tee_escape(v)}" for k, v in options.items()) + "]" + target


def _tee_escape(value: str) -> str:
    for char in "\\:,|[]'":
        value = value.replace(char, "\\\\" + char)
    return value


def _video_args(ladder: Ladder, preset: str, threads: int, storyboard: bool) -> list[str]:
    fps = ladder.fps or 30.0
    chains, args, pad = [], [], "[0:v:0]"
    last_index = len(ladder.renditions) - 1
    for i, r in enumerate(ladder.renditions):
        side = min(r.width, r.height)
        # A cascade: each rendition is scaled from the one above it, not from the source, which costs
        # far less than four full-size scales. Short side set, aspect kept, long side even; autorotate
        # has already turned the picture upright. The ladder planned the same sizes, step by step.
        chain = f"{pad}scale=w='if(gt(iw,ih),-2,{side})':h='if(gt(iw,ih),{side},-2)':flags=bilinear"
        chain += ",format=yuv420p" if i == 0 else ""
        outs = [f"[v{i}]"]
        if i < last_index:
            outs.append(f"[c{i}]")
        if i == 0 and extras.has_poster(ladder):  # the poster: one frame of the top rung
            outs.append("[p0]")
        if i == last_index and storyboard:  # the sprite: small tiles, cheapest from the lowest rung
            outs.append("[s0]")
        chains.append(chain + (f",split={len(outs)}" if len(outs) > 1 else "") + "".join(outs))
        pad = f"[c{i}]"
        args += [
            "-map", f"[v{i}]", f"-b:v:{i}", str(r.video_bitrate),
            f"-maxrate:v:{i}", str(int(r.video_bitrate * _MAXRATE)),
            f"-bufsize:v:{i}", str(int(r.video_bitrate * _BUFSIZE)),
            # stated, so the master's CODECS attribute says what the stream really is
            f"-level:v:{i}", f"{h264_level(r.width, r.height, fps) / 10:.1f}",
        ]
    if extras.has_poster(ladder):
        # The first frame starts the output; the frame at the poster time replaces it (`-update 1`).
        poster_at = extras.poster_time_s(ladder)
        chains.append(f"[p0]select='eq(n,0)+gte(t,{poster_at})',trim=end_frame=2[poster]")
    board = extras.plan_storyboard(ladder)
    if storyboard and board is not None:  # tiles now; extras.compose_sprite tiles them after the encode
        chains.append(f"[s0]fps=1/{board.interval_s},scale={board.tile_width}:{board.tile_height}[sprite]")
    seg = ladder.segment_seconds
    gop = max(2, round(fps * seg * 2))
    rate = ["-r", f"{fps:g}"] if ladder.source_fps and ladder.source_fps > 60 else []
    return [
        "-filter_complex", ";".join(chains), *args,
        "-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-threads", str(threads),
        "-flags:v", "+global_header", *rate, "-fps_mode", "vfr", "-g", str(gop), "-sc_threshold", "0",
        "-force_key_frames", f"expr:if(eq(n_forced,0),1,gte(t,max(1,(n_forced-1)*{seg})))",
    ]
# fmt: on
