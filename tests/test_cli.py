"""The CLI as a user runs it: a real process, real ffmpeg, stdout for results and stderr for the rest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fluxstudio.media import find_tools

ROOT = Path(__file__).resolve().parents[1]


def fluxstudio(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "fluxstudio", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_sample_then_transcode_makes_a_playable_ladder_with_a_progress_bar(tmp_path: Path) -> None:
    made = fluxstudio("sample", "clip.mp4", "--seconds", "3", "--size", "640x360", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "clip.mp4"

    done = fluxstudio(
        "transcode",
        "clip.mp4",
        "-o",
        "out",
        "--renditions",
        "360p,240p",
        "--segment-seconds",
        "2",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    master = Path(done.stdout.strip())
    assert master == tmp_path / "out" / "master.m3u8"
    assert "transcoding" in done.stderr and "100%" in done.stderr
    text = master.read_text()
    assert text.count("#EXT-X-STREAM-INF") == 2
    decoded = subprocess.run(
        [find_tools().ffmpeg, "-v", "error", "-i", str(master), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0, decoded.stderr


def test_transcode_refuses_a_non_empty_output_folder(tmp_path: Path) -> None:
    (tmp_path / "in.mp4").write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = fluxstudio("transcode", "in.mp4", "-o", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "not an empty folder" in result.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_transcode_of_a_text_file_fails_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 100)
    result = fluxstudio("transcode", "notes.mp4", "-o", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("fluxstudio transcode: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unknown_rendition_is_a_usage_error(tmp_path: Path) -> None:
    made = fluxstudio("sample", "clip.mp4", "--seconds", "1", "--size", "320x240", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    result = fluxstudio("transcode", "clip.mp4", "-o", "out", "--renditions", "999p", cwd=tmp_path)
    assert result.returncode == 2
    assert "999p" in result.stderr
