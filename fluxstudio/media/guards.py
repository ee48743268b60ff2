"""The fence around every ffmpeg we start: uploaded media is hostile.

What an input may make ffmpeg open is limited three ways: the input sits alone, under a random name, in a
private directory; only the `file` protocol is allowed; and only the demuxers we support may be
instantiated (`-format_whitelist`), which is what stops HLS/concat playlists from reading other users' files
(`-protocol_whitelist file` alone does not). Decoders refuse huge pictures (`-max_pixels`) and the process
runs with rlimits. This module builds those arguments and stages the input; it starts nothing.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fluxstudio.errors import Invalid

# Demuxers we accept. Never hls, dash, concat, image2, *_pipe, tty, bin, sdp, rtsp, imf: each can open
# other files or URLs, or turns any file into "video". Raw elementary streams (h264, hevc) are left out
# too: they have no duration, so they cannot be budgeted.
# fmt: off
FORMAT_WHITELIST = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2",  # the mov demuxer's aliases
    "matroska", "webm", "avi", "mpegts", "flv", "asf", "ogg", "mpeg", "mp3", "aac", "wav", "flac",
)
# fmt: on
PROTOCOL_WHITELIST = "file"

_SAFE_SUFFIX = re.compile(r"\.[a-z0-9]{1,5}")


@dataclass(frozen=True)
class Limits:
    """Budgets for one ffmpeg run. The defaults suit a 2-core worker and sources up to 4K, 6 hours."""

    max_pixels: int = 3840 * 2160
    max_duration_s: float = 6 * 3600
    address_space_bytes: int = 8 * 2**30
    file_size_bytes: int = 8 * 2**30
    open_files: int = 512
    stall_timeout_s: float = 60.0  # out_time not advancing this long kills the transcode
    #: CPU seconds a reporting child (ffmpeg with -progress) may burn without printing a line. ffmpeg
    #: reports every 0.5 s while it works through the input; one that computes in silence is turning one
    #: input frame into thousands (two frames hours apart, under a constant output rate): bad media.
    #: Not less: at the end of the input ffmpeg 5.1 flushes every encoder's lookahead without reporting,
    #: a few CPU seconds for a 1080p ladder at `veryfast`, several times that at `slower`.
    silent_cpu_s: float = 30.0


DEFAULT_LIMITS = Limits()


def input_args(limits: Limits) -> list[str]:
    """Options placed before the input (`-i` for ffmpeg, last for ffprobe), for both alike."""
    return [
        "-protocol_whitelist",
        PROTOCOL_WHITELIST,
        "-format_whitelist",
        ",".join(FORMAT_WHITELIST),
        "-max_pixels",
        str(limits.max_pixels),
    ]


def input_url(staged: Path) -> str:
    """The staged input as ffmpeg names it, relative to its private directory (the process's cwd).

    The `file:` prefix stops a name such as `-i` or `x|y` being read as an option or another protocol.
    """
    return f"file:{staged.name}"


def minimal_env() -> dict[str, str]:
    """ffmpeg needs nothing from our environment; passing none keeps secrets out of a hostile process."""
    return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "AV_LOG_FORCE_NOCOLOR": "1"}


def rlimits_preexec(limits: Limits, cpu_seconds: int | None):
    """A preexec_fn that applies rlimits in the child, before exec. Runs only setrlimit (fork-safe)."""
    import resource

    pairs = [
        (resource.RLIMIT_AS, limits.address_space_bytes),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    if cpu_seconds is not None:
        pairs.append((resource.RLIMIT_CPU, cpu_seconds))

    die_with_parent = parent_death_preexec()

    def apply() -> None:
        for kind, value in pairs:
            _soft, hard = resource.getrlimit(kind)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(kind, (value, value if kind != resource.RLIMIT_CPU else value + 5))
        die_with_parent()

    return apply


def parent_death_preexec(sig: int | None = None) -> Callable[[], None]:
    """A fork-safe callable that makes the child get `sig` (SIGKILL) when its parent dies (Linux prctl).

    A worker that is SIGKILLed (OOM killer, node drain) runs no cleanup; without this its ffmpeg would
    live on, orphaned, burning CPU and writing output nobody will publish. Loaded before the fork, so
    the child only makes one libc call.
    """
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return lambda: None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    pr_set_pdeathsig = 1

    chosen = signal.SIGKILL if sig is None else sig

    def apply() -> None:
        libc.prctl(pr_set_pdeathsig, chosen, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return apply


class StagedInput:
    """A private directory holding only the input, under a random name; removed on exit.

    A hard link costs nothing when the source is on the same filesystem; otherwise the file is copied.
    """

    def __init__(self, source: Path, work_dir: Path | None = None) -> None:
        try:
            st = source.stat()
        except OSError as exc:
            raise Invalid(f"cannot read the source file {source.name!r}: {exc.strerror}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise Invalid(f"the source {source.name!r} is not a regular file")
        self.source = source
        self.dir = Path(tempfile.mkdtemp(prefix="fluxstudio-job-", dir=work_dir))
        suffix = source.suffix.lower()
        self.path = self.dir / (secrets.token_hex(8) + (suffix if _SAFE_SUFFIX.fullmatch(suffix) else ""))
        try:
            os.link(source, self.path)
        except OSError:
            shutil.copyfile(source, self.path)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> StagedInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
