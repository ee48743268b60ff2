"""ffmpeg's progress blocks become Progress events that never go backwards and stay below 1.0."""

from __future__ import annotations

from fluxstudio.media.progress import ProgressReader


def block(out_time_us: str, *, end: bool = False, speed: str = "2x", fps: str | None = "30") -> list[str]:
    lines = [f"fps={fps}"] if fps is not None else []
    return [
        *lines,
        "bitrate=N/A",
        "total_size=N/A",
        f"out_time_us={out_time_us}",
        f"out_time_ms={out_time_us}",
        f"speed={speed}",
        f"progress={'end' if end else 'continue'}",
    ]


def feed(reader: ProgressReader, lines: list[str]):
    events = [reader.feed(line) for line in lines]
    assert all(e is None for e in events[:-1])
    return events[-1]


def test_progress_is_monotonic_and_held_below_one() -> None:
    reader = ProgressReader(duration_s=10.0)
    first = feed(reader, block("2000000"))
    assert first.progress == 0.2 and first.out_time_s == 2.0 and first.speed == 2.0 and first.eta_s == 4.0
    backwards = feed(reader, block("1000000"))  # 9.0.2 does this mid-run
    assert backwards.progress == 0.2
    unknown = feed(reader, block("N/A", speed="N/A"))
    assert unknown.progress == 0.2 and unknown.speed is None and unknown.eta_s is None
    end = feed(reader, block("10000000", end=True))
    assert end.progress < 1.0 and reader.ended


def test_audio_only_blocks_have_no_fps() -> None:
    reader = ProgressReader(duration_s=4.0)
    event = feed(reader, block("1000000", fps=None))
    assert event.fps is None and event.progress == 0.25


def test_garbage_lines_are_ignored() -> None:
    reader = ProgressReader(duration_s=4.0)
    assert reader.feed("not a key value line") is None
    assert feed(reader, ["out_time_us=-5", "speed=inf", "progress=continue"]).progress == 0.0
