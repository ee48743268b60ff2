"""A fleet of worker processes against one Redis and one PostgreSQL on this machine. Run by hand:

    python -m tests.bench.bench_fleet [--workers 50] [--concurrency 12] [--jobs 5000] [--job-seconds 20]

Everything is private to the run: a redis-server on a free port, a PostgreSQL (pgserver, in a temporary
folder, max_connections raised so the fleet's pools cannot run out), local storage. ffmpeg is stood in
by `fake-ffmpeg`, a shell script written by this bench only: it prints ffmpeg's progress lines every
~5 s for `--job-seconds`, and writes one valid HLS rendition per `-var_stream_map` entry of the
source's length, so the worker's own checks (progress ended, playlists complete, duration
matching) pass for real.

Figures:
1. Redis commands per second with the fleet idle (`INFO commandstats` deltas, INFO itself excluded):
   our workers, then the same number of plain arq workers with arq's defaults, on an empty queue and
   beside 500 running jobs (arq keeps a running job in its queue; every idle worker's poll reads it
   and checks its in-progress key, about 4 commands per running job per poll). Ours: a claimed job's
   wake-up leaves the queue, so running jobs cost idle workers nothing.
2. `--jobs` jobs created through `studio.jobs.create_job` (one asset each, sharing one stored source):
   peak running at once, jobs lost (not succeeded at the end), run twice (claimed more than once),
   published twice (more than one `job_succeeded`), claim transaction time p50/p95 (the workers'
   `job_claimed` lines) and created → claimed while slots were free, and PostgreSQL connections at the
   peak (pg_stat_activity).
The machine is shared (2 cores, other engineers' tests): figures are indicative, not a lab's.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio

from fluxstudio.config import load_settings
from fluxstudio.db.migrations import upgrade
from fluxstudio.db.pool import create_pool
from fluxstudio.ids import new_id
from fluxstudio.queue import Queue
from fluxstudio.storage import LocalStorage
from fluxstudio.studio import jobs
from fluxstudio.studio.models import JobOptions
from fluxstudio.studio.users import ensure_user

REPO = Path(__file__).resolve().parents[2]
SOURCE_S = 2.0
#: What the fake source "probed" as: small, video only, so the ladder has one rendition.
MEDIA = {
    "duration_s": SOURCE_S,
    "width": 320,
    "height": 240,
    "fps": 30.0,
    "video_codec": "h264",
    "audio_codec": None,
    "has_video": True,
    "has_audio": False,
    "rotation": 0,
}
FAKE_FFMPEG = r"""#!/bin/sh
# bench_fleet's stand-in for ffmpeg: progress lines, a sleep, one valid HLS rendition per stream.
map=""
last=""
while [ $# -gt 0 ]; do
  if [ "$1" = "-var_stream_map" ]; then map="$2"; fi
  last="$1"
  shift
done
out="${last%/%v/index.m3u8}"
# ffmpeg reports its output time as it goes; a silent minute would trip the worker's stall watchdog.
step=0
while [ "$step" -lt @STEPS@ ]; do
  printf 'out_time_us=%d\nprogress=continue\n' $((step * @DURATION_US@ / @STEPS@))
  /bin/sleep @STEP_S@
  step=$((step + 1))
done
for entry in $map; do
  name="${entry##*name:}"
  /bin/mkdir -p "$out/$name"
  printf 'fake transport stream bytes, enough to have a bit rate\n' > "$out/$name/seg_00000.ts"
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n' \
    > "$out/$name/index.m3u8"
  printf '#EXTINF:@DURATION@,\nseg_00000.ts\n#EXT-X-ENDLIST\n' >> "$out/$name/index.m3u8"
done
printf 'out_time_us=@DURATION_US@\nprogress=end\n'
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- private services ------------------------------------------------------------------------------


class PrivateServices:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis: subprocess.Popen[bytes] | None = None
        self.pg: Any = None

    def start(self) -> str:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed"
        self.redis = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--maxclients",
                "10000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

        data = self.folder / "pgdata"
        server = pgserver.get_server(data, cleanup_mode="stop")
        server.psql("ALTER SYSTEM SET max_connections = 1000;")
        server.cleanup()  # stops it; started again with the new limit
        self.pg = pgserver.get_server(data, cleanup_mode="stop")
        return self.pg.get_uri()

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.kill()
            self.redis.wait()
        if self.pg is not None:
            self.pg.cleanup()


# -- worker fleets ----------------------------------------------------------------------------------


def start_fleet(command: list[str], env: dict[str, str], count: int, logs: Path, tag: str) -> list[Any]:
    fleet = []
    for i in range(count):
        log = (logs / f"{tag}-{i}.log").open("wb")
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        fleet.append((process, logs / f"{tag}-{i}.log"))
    return fleet


def stop_fleet(fleet: list[Any]) -> None:
    for process, _ in fleet:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    for process, _ in fleet:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def wait_logged(fleet: list[Any], text: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        ready = sum(text in path.read_text(errors="replace") for _, path in fleet)
        dead = [p.pid for p, _ in fleet if p.poll() is not None]
        if dead:
            raise RuntimeError(f"workers died: {dead[:5]}")
        if ready == len(fleet):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{ready}/{len(fleet)} workers logged {text!r}")
        await asyncio.sleep(0.5)


def log_records(fleet: list[Any]) -> list[dict[str, Any]]:
    records = []
    for _, path in fleet:
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
    return records


# -- Redis commands per second -------------------------------------------------------------------------


async def commands_per_s(
    client: redis.asyncio.Redis, seconds: float
) -> tuple[float, list[tuple[str, float]]]:
    before = await client.info("commandstats")
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after = await client.info("commandstats")
    elapsed = time.monotonic() - started
    rates = {}
    for name, stats in after.items():
        calls = stats["calls"] - before.get(name, {"calls": 0})["calls"]
        if name != "cmdstat_info" and calls:
            rates[name.removeprefix("cmdstat_")] = calls / elapsed
    top = sorted(rates.items(), key=lambda kv: -kv[1])[:5]
    return sum(rates.values()), top


async def inject_running(client: redis.asyncio.Redis, queue_name: str, count: int) -> None:
    """What `count` running jobs look like in a plain arq queue: still queued, with an in-progress key."""
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        job_id = f"running-{i}"
        pipe.zadd(queue_name, {job_id: now_ms})
        pipe.set(f"arq:in-progress:{job_id}", b"1", ex=3600)
    await pipe.execute()


def arq_worker_main(redis_url: str, queue_name: str) -> None:
    """`python -m tests.bench.bench_fleet arq-worker URL QUEUE`: plain arq, every setting its default."""
    import logging

    from arq.connections import RedisSettings
    from arq.worker import Worker

    logging.basicConfig(level=logging.INFO)

    async def noop(ctx: dict[str, Any]) -> None:
        return None

    Worker(functions=[noop], redis_settings=RedisSettings.from_dsn(redis_url), queue_name=queue_name).run()


# -- the load ---------------------------------------------------------------------------------------


async def make_assets(pool: asyncpg.Pool, storage: LocalStorage, count: int) -> tuple[Any, list[str]]:
    user = await ensure_user(pool, "fleet@example.com")
    project = new_id("prj")
    await pool.execute("INSERT INTO projects (id, user_id, name) VALUES ($1, $2, 'fleet')", project, user.id)
    key = "sources/fleet/source.mp4"
    await storage.put(key, b"a source the stand-in ffmpeg never reads" * 10)
    ids = [new_id("ast") for _ in range(count)]
    await pool.executemany(
        "INSERT INTO assets (id, project_id, filename, size_bytes, source_key, media)"
        " VALUES ($1, $2, 'source.mp4', 410, $3, $4)",
        [(asset_id, project, key, MEDIA) for asset_id in ids],
    )
    return user, ids


async def sample(pool: asyncpg.Pool, database: str, peaks: dict[str, int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        running = await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'running'")
        connections = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = 'fluxstudio-worker'",
            database,
        )
        if running > peaks["running"]:
            peaks["running"], peaks["connections_at_peak"] = running, connections
        peaks["connections_max"] = max(peaks["connections_max"], connections)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await stop.wait()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fluxstudio-fleet-"))
    services = PrivateServices(folder)
    fleets: list[list[Any]] = []
    try:
        admin_url = services.start()
        database = "fleet"
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        database_url = admin_url.replace("/postgres?", f"/{database}?", 1)
        if database_url == admin_url:
            database_url = admin_url.rsplit("/", 1)[0] + f"/{database}"
        await asyncio.to_thread(upgrade, database_url)
        await bench(args, folder, services, database, database_url, fleets)
    finally:
        for fleet in fleets:
            stop_fleet(fleet)
        services.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def bench(
    args: argparse.Namespace,
    folder: Path,
    services: PrivateServices,
    database: str,
    database_url: str,
    fleets: list[list[Any]],
) -> None:
    media, logs, home = folder / "media", folder / "logs", folder / "home"
    for path in (media, logs, home):
        path.mkdir()
    fake = folder / "fake-ffmpeg"
    steps = max(1, round(args.job_seconds / 5))  # a progress line every ~5 s
    fake.write_text(
        FAKE_FFMPEG.replace("@STEPS@", str(steps))
        .replace("@STEP_S@", f"{args.job_seconds / steps:g}")
        .replace("@DURATION@", f"{SOURCE_S:.3f}")
        .replace("@DURATION_US@", str(int(SOURCE_S * 1e6)))
    )
    fake.chmod(0o755)
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_URL")},
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": database_url,
        "REDIS_URL": services.redis_url,
        "STORAGE_URL": media.as_uri(),
        "FLUXSTUDIO_HOME": str(home),
        "FFMPEG_PATH": str(fake),
        "WORKER_CONCURRENCY": str(args.concurrency),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "MALLOC_ARENA_MAX": "2",  # modest memory per process: 50 of them share the machine
    }
    client = redis.asyncio.Redis.from_url(services.redis_url)
    pool = await create_pool(database_url, min_size=1, max_size=20)
    settings = load_settings("worker", env)
    queue_name = "fluxstudio:queue"
    queue = await Queue.connect(services.redis_url, queue_name=queue_name)
    figures: dict[str, Any] = {"workers": args.workers, "concurrency": args.concurrency}
    try:
        # 1. idle: ours
        print(f"starting {args.workers} FluxStudio workers (concurrency {args.concurrency}) ...", flush=True)
        ours = start_fleet([sys.executable, "-m", "workers"], env, args.workers, logs, "ours")
        fleets.append(ours)
        await wait_logged(ours, "worker_started", 600)
        await asyncio.sleep(5)  # the first reconciles and beats are over
        figures["idle_ours"] = await commands_per_s(client, args.idle_seconds)
        print(f"  idle: {figures['idle_ours'][0]:.0f} Redis commands/s", flush=True)

        # 2. the load
        user, assets = await make_assets(pool, LocalStorage(media), args.jobs)
        print(f"creating {args.jobs} jobs ...", flush=True)
        peaks = {"running": 0, "connections_at_peak": 0, "connections_max": 0}
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(pool, database, peaks, stop))
        started = time.monotonic()
        limit = asyncio.Semaphore(16)

        async def create(asset_id: str) -> str:
            async with limit:
                job = await jobs.create_job(pool, queue, user, asset_id, JobOptions(), max_attempts=3)
                return job.id

        ids = await asyncio.gather(*(create(a) for a in assets))
        created_s = time.monotonic() - started
        print(f"  created in {created_s:.0f} s; waiting for them to finish ...", flush=True)
        busy = None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            counts = dict(await pool.fetch("SELECT status, count(*) FROM jobs GROUP BY status"))
            if busy is None and counts.get("running", 0) >= min(500, args.workers * args.concurrency * 0.8):
                busy = await commands_per_s(client, 5)
            if counts.get("queued", 0) + counts.get("running", 0) == 0:
                break
            await asyncio.sleep(1)
        total_s = time.monotonic() - started
        stop.set()
        await sampler
        figures["load_cmds"] = busy
        rows = await pool.fetch(
            "SELECT id, status, attempt, created_at, started_at, finished_at FROM jobs"
            " WHERE id = ANY($1::text[])",
            ids,
        )
        records = log_records(ours)
        stop_fleet(ours)
        fleets.remove(ours)

        # 3. idle: arq's defaults, empty and beside 500 running jobs
        print(f"starting {args.workers} plain arq workers (arq's defaults) ...", flush=True)
        arq_queue = "arq:queue"
        plain = start_fleet(
            [sys.executable, "-m", "tests.bench.bench_fleet", "arq-worker", services.redis_url, arq_queue],
            env,
            args.workers,
            logs,
            "arq",
        )
        fleets.append(plain)
        await wait_logged(plain, "Starting worker", 600)
        await asyncio.sleep(3)
        figures["idle_arq"] = await commands_per_s(client, args.idle_seconds)
        await inject_running(client, arq_queue, 500)
        await asyncio.sleep(1)
        figures["idle_arq_500"] = await commands_per_s(client, args.idle_seconds)
        stop_fleet(plain)
        fleets.remove(plain)
    finally:
        await queue.aclose()
        await client.aclose()
        await pool.close()
    report(args, figures, rows, records, peaks, created_s, total_s, settings.db_pool_size)


def report(
    args: argparse.Namespace,
    figures: dict[str, Any],
    rows: list[Any],
    records: list[dict[str, Any]],
    peaks: dict[str, int],
    created_s: float,
    total_s: float,
    pool_size: int,
) -> None:
    claims = Counter(r["job_id"] for r in records if r.get("event") == "job_claimed")
    published = Counter(r["job_id"] for r in records if r.get("event") == "job_succeeded")
    retried = Counter(r["job_id"] for r in records if r.get("event") in ("job_retrying", "job_lease_expired"))
    duplicates = sum(1 for job, n in claims.items() if n > 1 + retried[job])
    claim_ms = [float(r["claim_ms"]) for r in records if r.get("event") == "job_claimed" and "claim_ms" in r]
    statuses = Counter(r["status"] for r in rows)
    free_wait = free_slot_waits(rows, args.workers * args.concurrency)
    all_wait = [(r["started_at"] - r["created_at"]).total_seconds() for r in rows if r["started_at"]]
    ours, arq, arq500 = figures["idle_ours"][0], figures["idle_arq"][0], figures["idle_arq_500"][0]
    print()
    print(
        f"fleet: {args.workers} worker processes x concurrency {args.concurrency}, one Redis, one PostgreSQL,"
        f" 2 shared cores (other engineers' tests ran too)"
    )
    print("Redis commands/s, fleet idle (INFO commandstats deltas)")
    print(f"  ours, empty queue                  {ours:8.0f}   top: {_top(figures['idle_ours'][1])}")
    print(
        f"  arq defaults, empty queue          {arq:8.0f}   ({arq / ours:.1f}x ours)   top: "
        f"{_top(figures['idle_arq'][1])}"
    )
    print(
        f"  arq defaults, 500 jobs running     {arq500:8.0f}   ({arq500 / ours:.0f}x ours)   top: "
        f"{_top(figures['idle_arq_500'][1])}"
    )
    print("  ours beside running jobs: a claimed job's wake-up leaves the queue, so the idle figure holds")
    if figures["load_cmds"]:
        print(
            f"  ours, fleet busy (>=80% of slots) {figures['load_cmds'][0]:8.0f}   top: "
            f"{_top(figures['load_cmds'][1])}"
        )
    print(
        f"{len(rows)} jobs of {args.job_seconds:g} s: created in {created_s:.0f} s,"
        f" all done in {total_s:.0f} s"
    )
    print(f"  statuses                 {dict(statuses)}")
    print(f"  peak running at once     {peaks['running']}  (slots {args.workers * args.concurrency})")
    print(f"  lost (not succeeded)     {len(rows) - statuses.get('succeeded', 0)}")
    print(f"  run twice                {duplicates}   (claims beyond 1 + retries + expired leases)")
    print(f"  retried after a failure  {sum(1 for n in retried.values() if n)}")
    print(f"  published twice          {sum(1 for n in published.values() if n > 1)}")
    print(
        f"  claim transaction, ms    p50 {percentile(claim_ms, 50):.1f}  p95 {percentile(claim_ms, 95):.1f}"
        f"  (n={len(claim_ms)})"
    )
    print(
        f"  created -> claimed, ms   p50 {percentile(free_wait, 50):.0f}  p95 {percentile(free_wait, 95):.0f}"
        f"  (n={len(free_wait)}: jobs created while a slot was free)"
    )
    print(
        f"  queue wait, s            p50 {percentile(all_wait, 50):.1f}  p95 {percentile(all_wait, 95):.1f}"
        "  (all jobs: most wait for a slot)"
    )
    print(
        f"  PostgreSQL connections   {peaks['connections_at_peak']} at the peak,"
        f" {peaks['connections_max']} max"
        f" (pool cap {pool_size} x {args.workers} = {pool_size * args.workers})"
    )


def free_slot_waits(rows: list[Any], slots: int) -> list[float]:
    """created -> claimed (ms) of the jobs that found a free slot when they were created (fewer jobs
    queued or running, itself included, than slots): the claim path's own latency under load, without
    the time a job waits because every slot is busy."""
    created = sorted(r["created_at"] for r in rows)
    ends = sorted(r["finished_at"] for r in rows if r["finished_at"])
    waits = []
    for r in rows:
        if r["started_at"] is None:
            continue
        in_system = bisect.bisect_right(created, r["created_at"]) - bisect.bisect_right(ends, r["created_at"])
        if in_system <= slots:
            waits.append((r["started_at"] - r["created_at"]).total_seconds() * 1000)
    return waits


def _top(rates: list[tuple[str, float]]) -> str:
    return ", ".join(f"{name} {rate:.0f}" for name, rate in rates[:4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--job-seconds", type=float, default=20.0)
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "arq-worker":
        arq_worker_main(sys.argv[2], sys.argv[3])
    else:
        main()
