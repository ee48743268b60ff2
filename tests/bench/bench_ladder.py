"""Wall time of our one-process ladder against the alternatives. Run by hand, not by pytest:

    python -m tests.bench.bench_ladder [--rounds 3]

A 10 s 1080p30 source with audio, the 1080p/720p/480p/360p ladder, libx264 veryfast:
(a) transcode_hls with every extra (poster, storyboard, MP4), (b) transcode_hls without them (the plain
ladder), (c) one ffmpeg per rendition one after another, (d) a hand-written single command.
The machine is noisy, so variants alternate within each round and we compare medians and paired ratios.
Targets: ours (with extras) <= 0.80x per-rendition (P1), <= 1.05x reference (P2); extras <= 1.05x plain.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from fluxstudio.commands.sample import sample_args
from fluxstudio.media import LadderOptions, find_tools, plan_ladder, probe, transcode_hls

LADDER = ((1080, 5_000_000), (720, 2_800_000), (480, 1_400_000), (360, 800_000))


def make_source(ffmpeg: str, path: Path) -> None:
    """The same generated clip `fluxstudio sample` makes: 10 s of 1080p30 test pattern with a tone."""
    args = sample_args(ffmpeg, path, seconds=10, width=1920, height=1080, fps=30)
    subprocess.run(args, check=True)


def _scale(short: int) -> str:
    return f"scale=w='if(gt(iw,ih),-2,{short})':h='if(gt(iw,ih),{short},-2)'"


def _hls(out: Path, seg: int = 4) -> list[str]:
    return [
        "-f",
        "hls",
        "-hls_time",
        str(seg),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{seg})",
        "-sc_threshold",
        "0",
    ]


def per_rendition(ffmpeg: str, source: Path, out: Path) -> None:
    for short, rate in LADDER:
        folder = out / f"{short}p"
        folder.mkdir(parents=True)
        subprocess.run(
            [
                ffmpeg,
                "-v",
                "error",
                "-nostdin",
                "-i",
                str(source),
                "-vf",
                _scale(short),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-b:v",
                str(rate),
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                *_hls(out),
                "-hls_segment_filename",
                str(folder / "s_%03d.m4s"),
                str(folder / "index.m3u8"),
            ],
            check=True,
        )


def reference(ffmpeg: str, source: Path, out: Path) -> None:
    graph = "[0:v]split=4[a][b][c][d];" + ";".join(
        f"[{pad}]{_scale(short)}[v{i}]"
        for i, (pad, (short, _)) in enumerate(zip("abcd", LADDER, strict=True))
    )
    argv = [ffmpeg, "-v", "error", "-nostdin", "-i", str(source), "-filter_complex", graph]
    for i, (_, rate) in enumerate(LADDER):
        argv += ["-map", f"[v{i}]", "-map", "0:a", f"-b:v:{i}", str(rate)]
    argv += [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        *_hls(out),
        "-master_pl_name",
        "master.m3u8",
        "-hls_segment_filename",
        str(out / "%v/s_%03d.m4s"),
        "-var_stream_map",
        "v:0,a:0 v:1,a:1 v:2,a:2 v:3,a:3",
        str(out / "%v/index.m3u8"),
    ]
    subprocess.run(argv, check=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    tools = find_tools()
    with tempfile.TemporaryDirectory(prefix="bench-ladder-") as tmp:
        root = Path(tmp)
        source = root / "source.mp4"
        make_source(tools.ffmpeg, source)
        info = asyncio.run(probe(source, tools))
        ladder = plan_ladder(info, LadderOptions(renditions=("1080p", "720p", "480p", "360p")))

        extras = dataclasses.replace(ladder, mp4=True, stills=True)
        plain = dataclasses.replace(ladder, mp4=False, stills=False)
        variants = {
            "ours": lambda out: asyncio.run(transcode_hls(source, out, extras, tools)),
            "ours_plain": lambda out: asyncio.run(transcode_hls(source, out, plain, tools)),
            "per_rendition": lambda out: per_rendition(tools.ffmpeg, source, out),
            "reference": lambda out: reference(tools.ffmpeg, source, out),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}  # steadier than wall on a busy box
        names = list(variants)
        for round_no in range(rounds):
            shift = round_no % len(names)
            order = names[shift:] + names[:shift]  # alternate who goes first
            for name in order:
                out = root / f"{name}-{round_no}"
                out.mkdir()
                start, cpu_start = time.perf_counter(), _children_cpu()
                variants[name](out)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(_children_cpu() - cpu_start)
                shutil.rmtree(out)
                print(
                    f"round {round_no + 1} {name:14s} {times[name][-1]:6.2f} s wall"
                    f" {cpu[name][-1]:6.2f} s cpu",
                    flush=True,
                )

    print(f"\nffmpeg: {tools.ffmpeg}")
    for name, values in times.items():
        wall, used = statistics.median(values), statistics.median(cpu[name])
        print(
            f"{name:14s} median {wall:6.2f} s wall, {used:6.2f} s cpu  runs {[round(v, 2) for v in values]}"
        )
    for other, target in (("per_rendition", 0.80), ("reference", 1.05), ("ours_plain", 1.05)):
        ratio = statistics.median(times["ours"]) / statistics.median(times[other])
        paired = statistics.median(a / b for a, b in zip(times["ours"], times[other], strict=True))
        verdict = "ok" if ratio <= target else "MISSED"
        print(f"ours/{other}: {ratio:.2f}x of medians, {paired:.2f}x paired median", end=" ")
        print(f"(target <= {target}) {verdict};", end=" ")
        print(f"cpu {statistics.median(cpu['ours']) / statistics.median(cpu[other]):.2f}x")


if __name__ == "__main__":
    main()
