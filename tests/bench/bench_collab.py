"""Collaboration throughput: 1000 small updates from one client to 10 readers, our `/collab` against the
reference Node server (`@y/websocket-server` 0.1.1, yjs 13) in the same run. By hand:

    python -m tests.bench.bench_collab [--rounds 5] [--updates 1000] [--readers 10]
                                       [--database-url URL] [--redis-url URL]

The clients are the same for both servers: real y-websocket providers in one Node process
(tests/js/collab_bench.mjs). The clock runs from the writer's first edit until every reader holds all
of them; server CPU is the server process's user + system time over the same span (from /proc). Our
server is a real `python -m tests.fixtures.platform serve` (uvicorn, the default app with PostgreSQL and
Redis), so its time includes authentication, storing and relaying. Rounds alternate between the servers;
medians are printed. Target: ours <= 1.5x Node's time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from fluxstudio.db.migrations import upgrade
from fluxstudio.studio.projects import create_project
from fluxstudio.studio.tokens import create_token
from fluxstudio.studio.users import ensure_user
from tests.fixtures.platform import free_port, start_api_server

JS = Path(__file__).resolve().parents[1] / "js"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_clients(url: str, room: str, token: str, pid: int, readers: int, updates: int) -> tuple[float, float]:
    """(milliseconds until every reader has every update, server CPU seconds over that span)."""
    options = {"url": url, "room": room, "token": token, "readers": readers, "updates": updates}
    clients = subprocess.Popen(
        ["node", str(JS / "collab_bench.mjs"), json.dumps(options)], cwd=JS, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert clients.stdin is not None and clients.stdout is not None
    try:
        assert clients.stdout.readline().strip() == "ready", "the clients did not sync"
        before = cpu_seconds(pid)
        clients.stdin.write("go\n")
        clients.stdin.flush()
        result = json.loads(clients.stdout.readline())
        cpu = cpu_seconds(pid) - before
    finally:
        clients.wait(30)
    return result["ms"], cpu


def start_node_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        ["node", str(JS / "node_modules/@y/websocket-server/src/server.js")],
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}, cwd=JS,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return server, f"ws://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the Node server did not start")


async def prepare(database_url: str) -> tuple[str, list[str]]:
    """A token and fresh rooms (projects) to write in."""
    pool = await asyncpg.create_pool(database_url)
    _, token = await create_token(pool, "bench", email="bench@example.com")
    user = await ensure_user(pool, "bench@example.com")
    rooms = [f"project:{(await create_project(pool, user, f'bench {i}')).id}" for i in range(40)]
    await pool.close()
    return token, rooms


def main(rounds: int, updates: int, readers: int, admin_url: str, redis_url: str) -> None:
    database = f"fluxstudio_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{database}"'))
    database_url = admin_url.rsplit("/", 1)[0] + "/" + database
    node, node_url = start_node_server()
    ours = None
    try:
        upgrade(database_url)
        token, rooms = asyncio.run(prepare(database_url))
        with tempfile.TemporaryDirectory(prefix="fluxstudio-bench-") as folder:
            env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "STORAGE_URL": Path(folder).as_uri(),
                   "FLUXSTUDIO_HOME": folder, "LOG_FORMAT": "json", "LOG_LEVEL": "warning"}
            ours = start_api_server(env, Path(folder) / "api.log")
            ours_url = ours.url.replace("http://", "ws://") + "/collab"
            figures: dict[str, list[tuple[float, float]]] = {"node": [], "fluxstudio": []}
            run_clients(node_url, "warmup", "", node.pid, readers, updates)
            run_clients(ours_url, rooms.pop(), token, ours.process.pid, readers, updates)
            for i in range(rounds):
                figures["node"].append(run_clients(node_url, f"bench-{i}", "", node.pid, readers, updates))
                figures["fluxstudio"].append(
                    run_clients(ours_url, rooms.pop(), token, ours.process.pid, readers, updates)
                )
                print(f"round {i + 1}: node {figures['node'][-1][0]:7.1f} ms, "
                      f"fluxstudio {figures['fluxstudio'][-1][0]:7.1f} ms", flush=True)
    finally:
        node.terminate()
        if ours is not None:
            ours.stop()
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    report(figures, updates, readers)


def report(figures: dict[str, list[tuple[float, float]]], updates: int, readers: int) -> None:
    print(f"\n{updates} updates from 1 writer to {readers} readers, medians of {len(figures['node'])} rounds")
    medians = {}
    for name, runs in figures.items():
        ms = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        medians[name] = ms
        fastest = min(r[0] for r in runs)
        print(f"  {name:11s} time {ms:8.1f} ms  (min {fastest:7.1f})   server CPU {cpu * 1000:7.1f} ms")
    print(f"  ratio: fluxstudio / node = {medians['fluxstudio'] / medians['node']:.2f}x (target <= 1.5x)")


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--database-url", default=os.environ.get(
        "FLUXSTUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get(
        "FLUXSTUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    main(args.rounds, args.updates, args.readers, args.database_url, args.redis_url)
