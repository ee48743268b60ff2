"""Turn `-progress pipe:1` blocks into Progress events that never go backwards.

ffmpeg 9.0.2 can report `out_time` going backwards or `N/A` mid-run, and a job stopped by a signal still
prints `progress=end`, so the fraction is clamped, monotonic and held below 1.0: only the caller, once
ffmpeg exited 0 and the output was verified, reports 1.0.

The reader is also a guard: under a constant output rate, a source whose frames are far apart is padded
with duplicated frames, and when most of what ffmpeg encodes is filler (`dup_frames` past
`DUP_FLOOR` and past `DUP_SHARE` of the frames) the source is bad media, raised as `UnreadableMedia`
from `feed`, which stops ffmpeg. One gap so long that ffmpeg cannot report at all is
`process.Runaway`'s to catch. With a variable output rate ffmpeg duplicates nothing and this never trips.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fluxstudio.errors import UnreadableMedia

_HOLD_BELOW = 0.999
#: Duplicated frames that are always fine (a VFR phone clip's jitter, a few seconds of a frozen picture).
DUP_FLOOR = 300
#: Past the floor, the share of the output that may be filler.
DUP_SHARE = 0.5


@dataclass(frozen=True)
class Progress:
    progress: float  # 0..1
    out_time_s: float
    fps: float | None
    speed: float | None  # times realtime
    eta_s: float | None


class ProgressReader:
    """Feed it ffmpeg's progress lines; it returns a Progress at the end of every block."""

    def __init__(self, duration_s: float, cap_s: float | None = None) -> None:
        self.duration_s = max(duration_s, 1e-3)
        #: ffmpeg's out_time is the end of the last frame written to any output: a frame that lasts a
        #: minute (a 1/60 fps source, kept as it is) reads as a minute. Nothing goes past the budget.
        self.cap_s = cap_s
        self.out_time_s = 0.0
        self.ended = False
        self.last_advance = time.monotonic()  # for the watchdog
        self.last: Progress = Progress(0.0, 0.0, None, None, None)
        self._block: dict[str, str] = {}

    def feed(self, line: str) -> Progress | None:
        key, sep, value = line.partition("=")
        if not sep:
            return None
        if key != "progress":
            self._block[key.strip()] = value.strip()
            return None
        block, self._block = self._block, {}
        self.ended = self.ended or value.strip() == "end"
        _check_duplication(block)
        out_time = _out_time(block)
        if out_time is not None and self.cap_s is not None:
            out_time = min(out_time, self.cap_s)
        if out_time is not None and out_time > self.out_time_s:
            self.out_time_s = out_time
            self.last_advance = time.monotonic()
        speed = _float(block.get("speed", "").rstrip("x"))
        fps = _float(block.get("fps", ""))
        remaining = max(0.0, self.duration_s - self.out_time_s)
        self.last = Progress(
            progress=round(min(self.out_time_s / self.duration_s, _HOLD_BELOW), 4),
            out_time_s=round(self.out_time_s, 3),
            fps=fps,
            speed=speed,
            eta_s=round(remaining / speed, 1) if speed else None,
        )
        return self.last


def _check_duplication(block: dict[str, str]) -> None:
    dups, frames = _float(block.get("dup_frames", "")), _float(block.get("frame", ""))
    if dups is not None and frames and dups > DUP_FLOOR and dups > DUP_SHARE * frames:
        raise UnreadableMedia(
            f"{dups:.0f} of {frames:.0f} output frames are duplicates: the source's frames are too far "
            "apart to play at a constant rate"
        )


def _out_time(block: dict[str, str]) -> float | None:
    for key in ("out_time_us", "out_time_ms"):  # both are microseconds
        value = _float(block.get(key, ""))
        if value is not None and value >= 0:
            return value / 1e6
    return None


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None
