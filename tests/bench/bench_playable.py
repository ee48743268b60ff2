"""How soon a transcode can be watched: ffmpeg's start until every rendition has its first segment (the
moment the master can be published), and the whole encode's wall time. Run by hand, not by pytest:

    python -m tests.bench.bench_playable [--rounds 2]

A 20 s 1080p30 source with audio, the default ladder (1080p/720p/480p/360p + audio), 4 s segments:
(a) ours: one process, the first segment of every rendition 1 s (keyframes at 0, 1, 4, 8, ...),
(b) the same process with a plain 4 s first segment (every rendition moves in lockstep with the 1080p
    encode, so the first segments wait for 4 s of it).
MEDIA.md measured the third layout, the 360p rung in its own process: 1.7 s to its first segment at the
same total time, but a second decode of the source and a master that can only name that rung early.
The machine is noisy: variants alternate and we print medians. Goal: (a) <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from fluxstudio.commands.sample import sample_args
from fluxstudio.media import find_tools, plan_ladder, probe
from fluxstudio.media.command import AUDIO_NAME, ffmpeg_argv
from fluxstudio.media.guards import StagedInput, minimal_env
from fluxstudio.media.playlists import read_media_playlist

POLL_S = 0.02


def plain_first_segment(argv: list[str], seg: int) -> list[str]:
    """Variant (b): hls_time = the segment length and keyframes on the plain grid."""
    out = []
    for arg in argv:
        if arg.startswith("expr:if(eq(n_forced,0)"):
            arg = f"expr:gte(t,n_forced*{seg})"
        out.append(arg.replace("hls_time=1:", f"hls_time={seg}:"))
    return out


def run(argv: list[str], cwd: Path, out: Path, names: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, env=minimal_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    first = None
    while process.poll() is None:
        if first is None and all(_has_segment(out / name / "index.m3u8") for name in names):
            first = time.perf_counter() - start
        time.sleep(POLL_S)
    total = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"ffmpeg failed with {process.returncode}")
    return (first if first is not None else total), total


def _has_segment(playlist: Path) -> bool:
    try:
        return bool(read_media_playlist(playlist).segments)
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    rounds = parser.parse_args().rounds
    tools = find_tools()
    with tempfile.TemporaryDirectory(prefix="bench-playable-") as tmp:
        root = Path(tmp)
        source = root / "source.mp4"
        subprocess.run(
            sample_args(tools.ffmpeg, source, seconds=20, width=1920, height=1080, fps=30), check=True
        )
        ladder = plan_ladder(asyncio.run(probe(source, tools)))
        names = [r.name for r in ladder.renditions] + [AUDIO_NAME]
        staged = StagedInput(source, root)
        results: dict[str, list[tuple[float, float]]] = {"ours_1s_first": [], "plain_4s_first": []}
        for round_no in range(rounds):
            order = list(results) if round_no % 2 == 0 else list(reversed(results))
            for name in order:
                out = root / f"{name}-{round_no}"
                out.mkdir()
                argv = ffmpeg_argv(tools, staged, out, ladder)
                if name == "plain_4s_first":
                    argv = plain_first_segment(argv, ladder.segment_seconds)
                results[name].append(run(argv, staged.dir, out, names))
                first, total = results[name][-1]
                print(f"round {round_no + 1} {name:15s} playable after {first:5.2f} s,", end=" ")
                print(f"done after {total:6.2f} s", flush=True)
        staged.close()
    print(f"\nffmpeg {tools.ffmpeg}, 20 s 1080p30, ladder {', '.join(names)}, 4 s segments")
    for name, runs in results.items():
        first = statistics.median(r[0] for r in runs)
        total = statistics.median(r[1] for r in runs)
        print(f"{name:15s} playable after {first:5.2f} s median, done after {total:6.2f} s median")
    ours, plain = results["ours_1s_first"], results["plain_4s_first"]
    ratio = statistics.median(r[1] for r in ours) / statistics.median(r[1] for r in plain)
    first = statistics.median(r[0] for r in ours)
    verdict = "ok" if first <= 2 else "MISSED"
    print(f"ours: playable {first:.2f} s (goal <= 2 s, {verdict}); total time {ratio:.2f}x plain")


if __name__ == "__main__":
    main()
