"""Commands run beside a real `fluxstudio up` find it, with nothing exported: `tokens`, `migrate`, `doctor`
and `upload --wait` use the services and API that `up` recorded in FLUXSTUDIO_HOME/up.json. An explicit
setting still wins, and a stale record (its `up` gone) is one line and exit status 2, never a hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fluxstudio.commands.sample import sample_args
from fluxstudio.media import find_tools
from tests.test_up import ROOT, alive, descendants, free_port, mentioning

#: A stale record must be reported at once; this bounds "at once" generously for a loaded machine.
QUICK_S = 20


def bare_env(**extra: str) -> dict[str, str]:
    """The machine's environment without a single FluxStudio setting: nothing exported."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.endswith("_URL") or k.startswith(("FLUXSTUDIO_", "LOG_", "MCP_", "PORT")))
    }
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def fluxstudio(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fluxstudio", *args],
        cwd=cwd,
        env=bare_env(**extra),
        capture_output=True,
        text=True,
        timeout=180,
    )


@dataclass
class Up:
    folder: Path
    url: str
    token: str
    process: subprocess.Popen[str]
    stderr: Path

    @property
    def home(self) -> Path:
        return self.folder / ".fluxstudio"


@pytest.fixture(scope="module")
def up(module_up_folder: Path) -> Iterator[Up]:
    """`fluxstudio up` in a folder of its own, on its defaults (FLUXSTUDIO_HOME=./.fluxstudio), logging at
    info so that whatever it prints to its console can be checked."""
    folder = module_up_folder
    port = free_port()
    stderr = folder / "up.stderr"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "fluxstudio", "up", "--port", str(port)],
            cwd=folder,
            env=bare_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    started: set[int] = set()
    try:
        token = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert token.startswith("fs_"), stderr.read_text()[-3000:]
        started = descendants(process.pid)
        yield Up(folder, f"http://127.0.0.1:{port}", token, process, stderr)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        deadline = time.monotonic() + 10
        while (alive(started) or mentioning(str(folder))) and time.monotonic() < deadline:
            time.sleep(0.2)  # polling a condition with a deadline


@pytest.mark.slow
def test_tokens_create_list_and_revoke_beside_up(up: Up) -> None:
    email = f"other-{uuid.uuid4().hex[:8]}@example.com"
    created = fluxstudio("tokens", "create", "other", "--user", email, cwd=up.folder)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("fs_") and f"for {email}" in created.stderr
    # It was stored in up's database: up's API takes it.
    answer = httpx.get(f"{up.url}/api/v1/projects", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text

    listed = fluxstudio("tokens", "list", "--user", email, "--json", cwd=up.folder)
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)
    assert item["email"] == email and item["name"] == "other"

    revoked = fluxstudio("tokens", "revoke", item["id"], cwd=up.folder)
    assert revoked.returncode == 0, revoked.stderr
    again = fluxstudio("tokens", "revoke", item["id"], cwd=up.folder)
    assert again.returncode == 1
    assert again.stderr.splitlines() == [again.stderr.strip()] and "already revoked" in again.stderr
    unknown = fluxstudio("tokens", "revoke", "tok_nosuchtoken", cwd=up.folder)
    assert unknown.returncode == 1 and unknown.stderr.strip().endswith(
        "no API token has the id 'tok_nosuchtoken'"
    )


@pytest.mark.slow
def test_migrate_and_doctor_beside_up(up: Up) -> None:
    migrated = fluxstudio("migrate", cwd=up.folder)
    assert migrated.returncode == 0, migrated.stderr
    assert "database at revision" in migrated.stderr
    doctor = fluxstudio("doctor", cwd=up.folder)
    assert "FAIL  settings" not in doctor.stdout, doctor.stdout
    lines = doctor.stdout.splitlines()
    assert any(line.startswith("ok    postgresql") for line in lines), doctor.stdout
    assert any(line.startswith("ok    redis") for line in lines), doctor.stdout
    assert any(line.startswith("ok    migrations") for line in lines), doctor.stdout


@pytest.mark.slow
def test_upload_and_wait_beside_up(up: Up) -> None:
    clip = up.folder / "clip.mp4"
    made = subprocess.run(
        sample_args(find_tools().ffmpeg, clip, seconds=2, width=320, height=180, fps=25), capture_output=True
    )
    assert made.returncode == 0
    done = fluxstudio("upload", str(clip), "--wait", cwd=up.folder)
    assert done.returncode == 0, done.stderr
    playback = done.stdout.strip().splitlines()[-1]
    assert playback.startswith(f"{up.url}/media/hls/") and playback.endswith("master.m3u8")
    assert httpx.get(playback, timeout=30).status_code == 200


@pytest.mark.slow
def test_an_explicit_database_url_wins_over_the_record(up: Up, migrated_database_url: str) -> None:
    email = f"explicit-{uuid.uuid4().hex[:8]}@example.com"
    made = fluxstudio(
        "tokens", "create", "x", "--user", email, cwd=up.folder, DATABASE_URL=migrated_database_url
    )
    assert made.returncode == 0, made.stderr
    theirs = fluxstudio(
        "tokens", "list", "--user", email, "--json", cwd=up.folder, DATABASE_URL=migrated_database_url
    )
    ours = fluxstudio("tokens", "list", "--user", email, "--json", cwd=up.folder)
    assert theirs.returncode == 0 and ours.returncode == 0, theirs.stderr + ours.stderr
    assert [t["email"] for t in json.loads(theirs.stdout)] == [email]
    assert json.loads(ours.stdout) == []  # up's own database never saw it


@pytest.mark.slow
def test_the_record_is_private_and_up_prints_a_clean_console(up: Up) -> None:
    record = up.home / "up.json"
    assert record.stat().st_mode & 0o077 == 0
    saved = json.loads(record.read_text())
    assert saved["pid"] == up.process.pid and saved["api_url"] == up.url
    assert set(saved["services"]) == {"DATABASE_URL", "REDIS_URL"}  # both embedded
    assert up.token not in record.read_text()  # the token stays in dev.json alone
    console = up.stderr.read_text()
    # The curl hint carries the whole token, on one unbroken line, so that pasting it works.
    assert f"try: curl -H 'Authorization: Bearer {up.token}' {up.url}/api/v1/projects" in console
    # No initdb chatter and no terminal escape codes (uvicorn's color_message) on the console.
    assert "initdb" not in console and "color_message" not in console and "\x1b[" not in console
    assert "Application startup complete" in console  # uvicorn's info lines do reach it, plainly
    pg_log = (up.home / "logs" / "pgserver.log").read_text()
    assert "initdb" in pg_log or "PG_VERSION file found" in pg_log


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


@pytest.mark.parametrize("live_pid", [False, True], ids=["up-gone", "port-silent"])
def test_a_stale_record_is_one_line_and_exit_2(tmp_path: Path, live_pid: bool) -> None:
    home = tmp_path / ".fluxstudio"
    home.mkdir()
    pid = os.getpid() if live_pid else _dead_pid()
    url = f"http://127.0.0.1:{free_port()}"
    services = {
        "DATABASE_URL": f"postgresql://postgres:@/fluxstudio?host={home / 'postgres'}",
        "REDIS_URL": f"unix://{home / 'redis.sock'}?db=0",
    }
    (home / "up.json").write_text(json.dumps({"pid": pid, "api_url": url, "services": services}))
    (home / "dev.json").write_text(json.dumps({"url": url, "token": "fs_" + "x" * 43}))
    why = f"does not answer at {url} (pid {pid})" if live_pid else f"is not running any more (pid {pid})"
    (tmp_path / "clip.mp4").write_bytes(b"not really")

    for args in (("tokens", "list"), ("migrate",), ("upload", "clip.mp4")):
        started = time.monotonic()
        run = fluxstudio(*args, cwd=tmp_path)
        assert time.monotonic() - started < QUICK_S
        assert run.returncode == 2, run.stderr
        [line] = run.stderr.splitlines()
        assert why in line and str(home / "up.json") in line, line
        assert line.startswith(f"fluxstudio {args[0]}")

    doctor = fluxstudio("doctor", cwd=tmp_path)
    assert doctor.returncode == 1
    [settings_line] = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL  settings")]
    assert why in settings_line

    # A command that needs nothing the record holds never looks at it.
    check = fluxstudio("worker", "--check", cwd=tmp_path)
    assert check.returncode == 1 and "up.json" not in check.stderr + check.stdout

    # An explicit setting still wins over a stale record: it is not even looked at.
    explicit = fluxstudio("upload", "clip.mp4", "--server", url, "--token", "fs_t", cwd=tmp_path)
    assert explicit.returncode == 1 and "cannot reach the server" in explicit.stderr, explicit.stderr


@pytest.mark.slow
def test_ups_token_is_never_sent_to_another_server(up: Up) -> None:
    (up.folder / "x.mp4").write_bytes(b"x")
    elsewhere = f"http://127.0.0.1:{free_port()}"
    run = fluxstudio("upload", "x.mp4", "--server", elsewhere, cwd=up.folder)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("fluxstudio upload: FLUXSTUDIO_TOKEN (needed by upload): is not set")
