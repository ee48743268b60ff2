"""Worker heartbeats: how a liveness probe, `doctor` and `/metrics` know which workers are alive.

Each worker process beats twice every few seconds, from a task on its event loop (so a worker busy with a
long ffmpeg run still beats: ffmpeg is a child process, the loop stays free):

- a local file `FLUXSTUDIO_HOME/heartbeats/worker-<pid>.json`, read by `fluxstudio worker --check`. No
  network on purpose: a liveness probe that asked Redis would restart every healthy worker during a Redis
  failover, and one that asked PostgreSQL (the old Docker HEALTHCHECK) killed busy workers on a slow query;
- a key `<queue>:worker:<host>:<pid>` in Redis that expires after `MAX_AGE_S`, read by `doctor` and the API's
  `/metrics`. arq's own health key is one per queue, so N replicas overwrite each other and a dead replica
  hides behind a live one; one key per process with a TTL makes a dead worker vanish by itself.

A failed Redis write is logged once per outage and never stops the beat: the local file keeps the process
alive in the eyes of its orchestrator, which is what it should believe while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from redis.asyncio import Redis

from fluxstudio import __version__
from fluxstudio.log import get_logger
from fluxstudio.queue import DEFAULT_QUEUE, REDIS_ERRORS

#: A worker that has not beaten for this long is dead (the contract of `worker --check`: 60 s).
MAX_AGE_S = 60.0
#: Beat often enough that two beats can be missed (a slow disk, a GC pause) before MAX_AGE_S.
INTERVAL_S = 10.0
REDIS_TIMEOUT_S = 2.0
FOLDER = "heartbeats"

log = get_logger()


@dataclass(frozen=True)
class Beat:
    """What a worker says about itself. No setting, URL or secret: doctor prints these as they are."""

    worker: str  # host:pid, the same name as the `worker` column of a job row
    host: str
    pid: int
    queue: str
    concurrency: int
    jobs_running: int
    started_at: float  # epoch seconds
    beat_at: float
    version: str = __version__

    def age_s(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.beat_at)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Beat | None:
        """The beat, or None for anything that is not one (a torn or foreign file, an old format)."""
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError):
            return None


def worker_key(queue_name: str, worker: str) -> str:
    return f"{queue_name}:worker:{worker}"


def local_path(home: Path, pid: int | None = None) -> Path:
    return home / FOLDER / f"worker-{os.getpid() if pid is None else pid}.json"


def write_local(home: Path, beat: Beat) -> Path:
    """Replace this process's file atomically, so `--check` never reads half a beat."""
    path = local_path(home, beat.pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(beat.to_json())
    os.replace(partial, path)
    return path


def read_local(home: Path) -> list[Beat]:
    """Every worker beat on this machine (one per worker process sharing FLUXSTUDIO_HOME), freshest first."""
    beats = []
    for path in (home / FOLDER).glob("worker-*.json"):
        with contextlib.suppress(OSError):
            beat = Beat.from_json(path.read_bytes())
            if beat is not None:
                beats.append(beat)
    return sorted(beats, key=lambda b: b.beat_at, reverse=True)


def check_local(home: Path, *, max_age_s: float = MAX_AGE_S, now: float | None = None) -> tuple[bool, str]:
    """(alive, one line for a human): alive if a worker on this machine beat within `max_age_s`."""
    beats = read_local(home)
    if not beats:
        where = home / FOLDER
        return False, f"no worker heartbeat under {where} (is a worker running with this FLUXSTUDIO_HOME?)"
    freshest = beats[0]
    age = freshest.age_s(now)
    if age > max_age_s:
        return False, f"worker {freshest.worker} last beat {age:.0f} s ago (more than {max_age_s:.0f} s)"
    return True, (
        f"worker {freshest.worker} beat {age:.0f} s ago, {freshest.jobs_running} job(s) running"
    )


async def read_fleet(redis: Redis, queue_name: str = DEFAULT_QUEUE, *, limit: int = 1000) -> list[Beat]:
    """Every live worker's beat from Redis (raises a REDIS_ERRORS error when Redis cannot answer)."""
    keys: list[bytes] = []
    async with asyncio.timeout(REDIS_TIMEOUT_S):
        async for key in redis.scan_iter(match=worker_key(queue_name, "*"), count=200):
            keys.append(key)
            if len(keys) >= limit:
                break
        values = await redis.mget(keys) if keys else []
    beats = [b for v in values if v is not None and (b := Beat.from_json(v)) is not None]
    return sorted(beats, key=lambda b: b.worker)


class Heartbeat:
    """The beating side, one per worker process: `hb.run()` in a task, `await hb.stop()` at exit."""

    def __init__(
        self,
        home: Path,
        redis: Redis,
        *,
        queue_name: str,
        concurrency: int,
        jobs_running: Callable[[], int],
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.home = home
        self.redis = redis
        self.queue_name = queue_name
        self.concurrency = concurrency
        self.jobs_running = jobs_running
        self.interval_s = interval_s
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.worker = f"{self.host}:{self.pid}"
        self.started_at = time.time()
        self._redis_down = False

    def beat_now(self) -> Beat:
        return Beat(
            worker=self.worker,
            host=self.host,
            pid=self.pid,
            queue=self.queue_name,
            concurrency=self.concurrency,
            jobs_running=self.jobs_running(),
            started_at=self.started_at,
            beat_at=time.time(),
        )

    async def beat(self) -> Beat:
        beat = self.beat_now()
        try:
            await asyncio.to_thread(write_local, self.home, beat)
        except OSError as exc:
            # The orchestrator will restart us for this, rightly: a worker that cannot write its home
            # cannot write its temporary files either.
            log.error("heartbeat_file_failed", error=type(exc).__name__, folder=str(self.home / FOLDER))
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                await self.redis.set(
                    worker_key(self.queue_name, self.worker), beat.to_json(), px=int(MAX_AGE_S * 1000)
                )
        except (*REDIS_ERRORS, TimeoutError) as exc:
            if not self._redis_down:
                log.warning("heartbeat_redis_failed", error=str(exc) or type(exc).__name__)
            self._redis_down = True
        else:
            if self._redis_down:
                log.info("heartbeat_redis_restored")
            self._redis_down = False
        return beat

    async def run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        """A worker that stops cleanly says so at once, rather than looking alive for another minute."""
        with contextlib.suppress(OSError):
            local_path(self.home, self.pid).unlink()
        with contextlib.suppress(*REDIS_ERRORS, TimeoutError):
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                await self.redis.delete(worker_key(self.queue_name, self.worker))
