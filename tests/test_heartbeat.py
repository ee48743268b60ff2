"""Worker liveness: a real worker process beats a local file and a Redis key of its own; `worker --check`
and `--health-port` answer from the file alone; the API's /metrics counts live workers from the keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio

from fluxstudio.heartbeat import Beat, Heartbeat, check_local, local_path, read_fleet, write_local
from fluxstudio.queue import DEFAULT_QUEUE
from tests.fixtures.jobs import PrivateRedis
from tests.fixtures.platform import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]


def worker_check(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(FLUXSTUDIO_HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "fluxstudio", "worker", "--check"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=30,
    )


def beat(pid: int, age_s: float, jobs: int = 0) -> Beat:
    now = time.time()
    return Beat(f"host:{pid}", "host", pid, DEFAULT_QUEUE, 2, jobs, now - 600, now - age_s)


def test_check_needs_a_fresh_beat_from_this_machine(tmp_path: Path) -> None:
    alive, line = check_local(tmp_path)
    assert not alive and "no worker heartbeat" in line

    write_local(tmp_path, beat(11, age_s=120))
    alive, line = check_local(tmp_path)
    assert not alive and "host:11" in line and "120 s ago" in line

    # Several workers share a home under `fluxstudio up`: the freshest one answers.
    write_local(tmp_path, beat(12, age_s=5, jobs=1))
    alive, line = check_local(tmp_path)
    assert alive and "host:12" in line and "1 job(s) running" in line

    # A torn or foreign file is ignored rather than crashing the probe.
    (tmp_path / "heartbeats" / "worker-13.json").write_text("{not json")
    assert check_local(tmp_path)[0]


async def test_a_beat_survives_redis_being_down(tmp_path: Path, closed_port: int) -> None:
    client = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{closed_port}/0", socket_connect_timeout=1)
    heartbeat = Heartbeat(tmp_path, client, queue_name=DEFAULT_QUEUE, concurrency=1, jobs_running=lambda: 3)
    try:
        sent = await heartbeat.beat()
    finally:
        await client.aclose()
    assert sent.jobs_running == 3
    alive, _ = check_local(tmp_path)
    assert alive, "a Redis outage must never make the liveness probe fail"
    await heartbeat.stop()
    assert not local_path(tmp_path, heartbeat.pid).exists()


async def test_a_worker_beats_locally_and_in_redis_and_stops_cleanly(
    tmp_path: Path,
    migrated_database_url: str,
    private_redis: PrivateRedis,
    start_worker: Callable[..., Any],
) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {
        "DATABASE_URL": migrated_database_url,
        "REDIS_URL": private_redis.url,
        "STORAGE_URL": (tmp_path / "media").as_uri(),
        "FLUXSTUDIO_HOME": str(home),
    }
    assert worker_check(home).returncode == 1  # nothing has beaten yet
    worker = start_worker(env, "--health-port", str(port), "--concurrency", "2")
    client = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        fleet = await wait_for(lambda: read_fleet(client), 30, f"a heartbeat key\n{worker.log()}")
        assert [b.pid for b in fleet] == [worker.process.pid]
        assert fleet[0].concurrency == 2 and fleet[0].jobs_running == 0
        assert await client.pttl(f"{DEFAULT_QUEUE}:worker:{fleet[0].worker}") > 0  # a dead worker expires

        checked = worker_check(home)
        assert checked.returncode == 0, checked.stderr
        assert fleet[0].worker in checked.stdout

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            health = await wait_for(lambda: _get(http, "/healthz"), 10, "the health port")
            assert health.status_code == 200 and fleet[0].worker in health.text
            metrics = await http.get("/metrics")
            assert "fluxstudio_worker_jobs_running 0.0" in metrics.text
            assert 'fluxstudio_worker_arq_jobs_total{outcome="complete"}' in metrics.text
            assert "fluxstudio_worker_heartbeat_age_seconds" in metrics.text
            assert (await http.get("/nope")).status_code == 404

        worker.stop()
        assert worker.process.returncode == 0, worker.log()
        assert await read_fleet(client) == [], "a clean stop removes the worker's key at once"
        assert worker_check(home).returncode == 1
    finally:
        await client.aclose()


async def _get(http: httpx.AsyncClient, path: str) -> httpx.Response | None:
    try:
        return await http.get(path)
    except httpx.TransportError:
        return None


async def test_api_metrics_count_live_workers_from_their_heartbeats(
    tmp_path: Path, api: Any, redis_url: str
) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    heartbeat = Heartbeat(tmp_path, client, queue_name=DEFAULT_QUEUE, concurrency=4, jobs_running=lambda: 3)
    heartbeat.worker = f"metrics-test:{os.getpid()}"
    try:
        await heartbeat.beat()
        before = await read_fleet(client)
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(api.url + "/metrics")).text
        values = _samples(text)
        assert values["fluxstudio_workers"] == len(before) >= 1
        assert values["fluxstudio_workers_jobs_running"] >= 3
        assert values["fluxstudio_workers_capacity"] >= 4
        assert "fluxstudio_jobs{status=\"running\"}" in text and "fluxstudio_queue_depth" in text
    finally:
        await heartbeat.stop()
        await client.aclose()


def _samples(text: str) -> dict[str, float]:
    return {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line and not line.startswith("#") and "{" not in line.split()[0]
    }


def test_beat_json_holds_no_settings() -> None:
    data = json.loads(beat(1, 0).to_json())
    assert set(data) == {
        "worker", "host", "pid", "queue", "concurrency", "jobs_running", "started_at", "beat_at", "version"
    }

