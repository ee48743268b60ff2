"""The JavaScript y-websocket provider against a real `fluxstudio up` on embedded defaults (no DATABASE_URL
or REDIS_URL): two browsers' worth of clients, one with the dev API token and one with a room token, edit
`project:{id}` of a project made through the API and converge; Ctrl-C then leaves nothing running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.test_collab_support import js_client
from tests.test_up import ROOT, alive, descendants, free_port, mentioning


async def collaborate(port: int, token: str) -> None:
    """Two y-websocket clients (dev token, room token) on a project made through the API, then a third."""
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        project = (await http.post("/api/v1/projects", json={"name": "shared doc"})).json()
        room = f"project:{project['id']}"
        grant = await http.post("/api/v1/collab/tokens", json={"room": room})
        assert grant.status_code == 201, grant.text
    ws_url = f"ws://127.0.0.1:{port}/collab"
    expect = {"writes": 5, "expect": 10, "expectAwareness": 2}
    first, second = await asyncio.gather(
        js_client(ws_url, room, token, prefix="api", **expect),
        js_client(ws_url, room, grant.json()["token"], prefix="room", **expect),
    )
    assert sorted(first["items"]) == sorted(second["items"])
    assert set(first["items"]) == {f"{p}{i}" for p in ("api", "room") for i in range(5)}
    assert {"api", "room"} <= set(first["awareness"]) and {"api", "room"} <= set(second["awareness"])
    # A later visitor gets the document from the server alone.
    again = await js_client(ws_url, room, token, prefix="late", expect=10)
    assert sorted(again["items"]) == sorted(first["items"])
    assert (await js_client(ws_url, room, "fs_wrong"))["closed"] == 4401


@pytest.mark.slow
@pytest.mark.usefixtures("js_clients")
def test_js_provider_against_fluxstudio_up(up_folder: Path) -> None:
    tmp_path = up_folder
    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(FLUXSTUDIO_HOME=str(home), PYTHONPATH=str(ROOT), LOG_LEVEL="warning")
    process = subprocess.Popen(
        [sys.executable, "-m", "fluxstudio", "up", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    started: set[int] = set()
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        token = line.strip()
        assert token.startswith("fs_"), process.stderr.read()[-3000:] if process.poll() is not None else line  # type: ignore[union-attr]
        assert json.loads((home / "dev.json").read_text())["token"] == token
        started = descendants(process.pid)
        asyncio.run(collaborate(port, token))
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, process.stderr.read()[-3000:]  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while (alive(started) or mentioning(str(home))) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling a condition with a deadline
    assert alive(started) == set(), "left running after up stopped"
    assert mentioning(str(home)) == []  # no embedded postgres or redis-server, no worker
