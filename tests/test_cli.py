"""The CLI as a user runs it: a real process, real ffmpeg, stdout for results and stderr for the rest."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxstudio.cli import build_parser
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


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed (a traceback or a flood fails this)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_upload_with_no_server_anywhere_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    result = fluxstudio("upload", "clip.mp4", cwd=tmp_path, env={"FLUXSTUDIO_HOME": str(tmp_path / "home")})
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("fluxstudio upload: FLUXSTUDIO_SERVER (needed by upload): is not set")
    assert "--server" in line and "fluxstudio up" in line


def test_upload_to_a_server_without_a_scheme_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    result = fluxstudio("upload", "clip.mp4", "--server", "127.0.0.1:8000", "--token", "fs_t", cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result).startswith("fluxstudio upload: --server (needed by upload): must start with")


def test_upload_to_a_server_that_is_not_running_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"x")
    with socket.socket() as closed:  # a port that was free a moment ago: nothing listens there
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    server = f"http://127.0.0.1:{port}"
    result = fluxstudio("upload", "clip.mp4", "--server", server, "--token", "fs_t", cwd=tmp_path)
    assert result.returncode == 1
    assert one_line(result).startswith(f"fluxstudio upload: cannot reach the server at {server} (")


def test_up_on_a_port_in_use_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = fluxstudio("up", "--port", str(port), cwd=tmp_path, env={"FLUXSTUDIO_HOME": str(home)})
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith(f"fluxstudio up: port {port} on 127.0.0.1 is already in use") and "--port" in line
    assert not (home / "postgres").exists() and not (home / "up.json").exists()  # nothing was started


def _subcommands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield f"{path} {name}".strip(), child
                yield from _subcommands(child, f"{path} {name}")


def test_every_subcommand_has_a_description_and_documents_every_option() -> None:
    commands = dict(_subcommands(build_parser()))
    assert {"up", "serve", "worker", "upload", "tokens create", "tokens revoke", "doctor"} <= set(commands)
    for name, parser in commands.items():
        assert parser.description, name
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                assert action.help, f"{name} {action.dest} has no help"


def test_help_shows_descriptions_and_defaults(tmp_path: Path) -> None:
    upload = fluxstudio("upload", "--help", cwd=tmp_path)
    assert upload.returncode == 0
    text = " ".join(upload.stdout.split())  # argparse wraps to the terminal's width
    assert "Stream FILE to a running server" in text and "(default: uploads)" in text
    up = " ".join(fluxstudio("up", "--help", cwd=tmp_path).stdout.split())
    assert "(default: 127.0.0.1)" in up and "(default: 1)" in up and "(default: None)" not in up
