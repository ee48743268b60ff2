"""`fluxstudio up --demo` on a machine with no services configured: embedded PostgreSQL and Redis, the API,
a worker process, the demo transcode through the API, and a clean stop on SIGTERM with nothing left running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fluxstudio.commands.sample import sample_args
from fluxstudio.media import find_tools

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (workers, ffmpeg, embedded PostgreSQL and Redis)."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        child, parent = (int(v) for v in line.split())
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def mentioning(text: str) -> list[str]:
    """Processes whose command line names `text`: pg_ctl daemonises postgres away from its parent."""
    out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line]


def alive(pids: set[int]) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,stat="], capture_output=True, text=True).stdout
    running = {int(p) for p, stat in (line.split() for line in out.splitlines()) if not stat.startswith("Z")}
    return pids & running


@pytest.mark.slow
def test_up_demo_on_embedded_defaults_then_stops_cleanly(up_folder: Path) -> None:
    tmp_path = up_folder
    home = tmp_path / "home"
    home.mkdir()
    # A short clip where the demo looks for its own, so the test does not spend 20 s on a 1080p ladder.
    tools = find_tools()
    clip = subprocess.run(
        sample_args(tools.ffmpeg, home / "demo.mp4", seconds=3, width=640, height=360, fps=25),
        capture_output=True,
    )
    assert clip.returncode == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(FLUXSTUDIO_HOME=str(home), PYTHONPATH=str(ROOT), LOG_LEVEL="warning")
    process = subprocess.Popen(
        [sys.executable, "-m", "fluxstudio", "up", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        token = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert token.startswith("fs_"), process.stderr.read() if process.poll() is not None else token  # type: ignore[union-attr]
        playback = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert playback.startswith(f"http://127.0.0.1:{port}/media/hls/") and playback.endswith("master.m3u8")
        saved = json.loads((home / "dev.json").read_text())
        assert saved == {"url": f"http://127.0.0.1:{port}", "token": token}
        assert (home / "dev.json").stat().st_mode & 0o077 == 0
        assert json.loads((home / "up.json").read_text())["api_url"] == f"http://127.0.0.1:{port}"

        master = httpx.get(playback, timeout=10)
        assert master.status_code == 200
        assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        decoded = subprocess.run(
            [tools.ffmpeg, "-v", "error", "-i", playback, "-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert decoded.returncode == 0, decoded.stderr
        projects = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/projects", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert [p["name"] for p in projects["items"]] == ["demo"]
        started = descendants(process.pid)
        assert started  # at least the worker
        assert mentioning(str(home / "postgres"))  # the embedded PostgreSQL runs from FLUXSTUDIO_HOME
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    stderr = process.stderr.read()  # type: ignore[union-attr]
    assert code == 0, stderr
    assert re.search(rf"console: open http://127\.0\.0\.1:{port}/signin\?code=[\w-]{{40,}} ", stderr), stderr
    deadline = time.monotonic() + 10
    while (alive(started) or mentioning(str(home / "postgres"))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(started) == set(), "left running after up stopped"
    assert mentioning(str(home / "postgres")) == []
    assert not (home / "up.json").exists()  # a stopped `up` leaves no record behind
