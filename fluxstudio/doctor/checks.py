"""The checks of a deployment's dependencies, each bounded by its own timeout so doctor answers in seconds.

A check returns lines and never raises: whatever goes wrong becomes a FAIL with the fix. Messages come
from our own translated errors (which name host, port and database, never a password) or from exception
class names; a driver's free text is not trusted to be secret-free.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from fluxstudio.config import Settings
from fluxstudio.db.migrations import head_revision
from fluxstudio.db.pool import connect, describe
from fluxstudio.doctor.report import FAIL, OK, WARN, Check
from fluxstudio.errors import FluxError
from fluxstudio.heartbeat import MAX_AGE_S, Beat, read_fleet, read_local
from fluxstudio.media import find_tools
from fluxstudio.queue import DEFAULT_QUEUE, redis_client
from fluxstudio.runtime.metrics import JobStats, read_job_stats
from fluxstudio.storage import open_storage
from fluxstudio.storage.s3 import addressing_style

POSTGRES_TIMEOUT_S = 4.0
REDIS_TIMEOUT_S = 3.0
STORAGE_TIMEOUT_S = 8.0
FFMPEG_TIMEOUT_S = 5.0
CLOCK_TIMEOUT_S = 3.0
#: S3 refuses a signature more than 15 minutes off (RequestTimeTooSkewed); warn well before.
SKEW_FAIL_S = 15 * 60
SKEW_WARN_S = 60
OLDEST_QUEUED_WARN_S = 600
STALE_BEAT_WARN_S = 30
SHOWN_WORKERS = 5


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FluxError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return type(exc).__name__


@dataclass
class DatabaseFacts:
    """What the PostgreSQL check learned that other checks use."""

    reachable: bool = False
    jobs: JobStats | None = None
    checks: list[Check] = field(default_factory=list)


async def check_postgres(settings: Settings) -> DatabaseFacts:
    facts = DatabaseFacts()
    if settings.database_url is None:
        facts.checks.append(Check("postgresql", FAIL, "not checked: DATABASE_URL is unusable", "see above"))
        return facts
    url = settings.database_url.get()
    where = describe(url)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(POSTGRES_TIMEOUT_S):
            connection = await connect(url, connect_timeout=POSTGRES_TIMEOUT_S - 1, application_name="doctor")
    except Exception as exc:
        fix = "check that PostgreSQL runs, and the host, port, database, user and password in DATABASE_URL"
        facts.checks.append(Check("postgresql", FAIL, f"cannot connect to {where}: {_reason(exc)}", fix))
        return facts
    try:
        async with asyncio.timeout(POSTGRES_TIMEOUT_S):
            version = await connection.fetchval("SHOW server_version")
            ms = (time.perf_counter() - started) * 1000
            facts.reachable = True
            detail = f"{where} answered in {ms:.0f} ms (PostgreSQL {version})"
            facts.checks.append(Check("postgresql", OK, detail))
            facts.checks.append(await _migrations(connection))
            if facts.checks[-1].status == OK:
                facts.jobs = await read_job_stats(connection)  # type: ignore[arg-type]
    except Exception as exc:
        detail = f"{where} failed a query: {_reason(exc)}"
        facts.checks.append(Check("postgresql", FAIL, detail, "see the PostgreSQL logs"))
    finally:
        await connection.close(timeout=2)
    return facts


async def _migrations(connection: asyncpg.Connection) -> Check:
    head = head_revision()
    try:
        current = await connection.fetchval("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        current = None
    if current == head:
        return Check("migrations", OK, f"at head ({head})")
    at = f"at {current}, code expects {head}" if current else "never migrated (no alembic_version table)"
    return Check("migrations", FAIL, f"database {at}", "run `fluxstudio migrate` (the PRE_DEPLOY job does)")


def check_queue(facts: DatabaseFacts) -> Check:
    if facts.jobs is None:
        return Check("queue", WARN, "not checked: needs a reachable, migrated PostgreSQL")
    jobs = facts.jobs
    running = jobs.by_status.get("running", 0)
    detail = f"{jobs.queue_depth} queued, {running} running"
    if jobs.queue_depth:
        detail += f", oldest queued {jobs.oldest_queued_age_s:.0f} s ago"
    if jobs.oldest_queued_age_s > OLDEST_QUEUED_WARN_S:
        return Check("queue", WARN, detail, "jobs are waiting long: add workers or check their logs")
    return Check("queue", OK, detail)


@dataclass
class RedisFacts:
    reachable: bool = False
    workers: list[Beat] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


async def check_redis(settings: Settings) -> RedisFacts:
    facts = RedisFacts()
    if settings.redis_url is None:
        facts.checks.append(Check("redis", FAIL, "not checked: REDIS_URL is unusable", "see above"))
        return facts
    redis = redis_client(settings.redis_url.get())
    try:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            started = time.perf_counter()
            await redis.ping()
            ms = (time.perf_counter() - started) * 1000
            wakeups = await redis.zcard(DEFAULT_QUEUE)
            facts.workers = await read_fleet(redis, DEFAULT_QUEUE)
        facts.reachable = True
        detail = f"answered PING in {ms:.1f} ms; {wakeups} wake-up(s) in the queue"
        facts.checks.append(Check("redis", OK, detail))
    except Exception as exc:
        fix = "check that Redis runs, the host and port, the password, and rediss:// if it needs TLS"
        facts.checks.append(Check("redis", FAIL, f"cannot reach Redis: {_reason(exc)}", fix))
    finally:
        await redis.aclose(close_connection_pool=True)
    return facts


def check_workers(redis: RedisFacts, database: DatabaseFacts, local: list[Beat] | None = None) -> Check:
    """The fleet from Redis; `local` (this machine's heartbeat files) answers when Redis cannot."""
    now = time.time()
    seen = {b.worker: b for b in (local or [])} | {b.worker: b for b in redis.workers}
    waiting = [b for b in seen.values() if b.age_s(now) <= MAX_AGE_S and b.waiting_for is not None]
    if waiting:
        shown = "; ".join(f"worker {b.worker} up, {b.waiting_line(now)}" for b in waiting[:SHOWN_WORKERS])
        more = len(waiting) - SHOWN_WORKERS
        detail = shown + (f" and {more} more" if more > 0 else "")
        return Check("workers", WARN, detail, "they resume by themselves once it answers: fix the dependency")
    if not redis.reachable:
        return Check("workers", WARN, "not checked: heartbeats live in Redis, which is unreachable")
    queued = database.jobs.queue_depth if database.jobs is not None else 0
    if not redis.workers:
        if queued:
            return Check(
                "workers", FAIL, f"no live worker heartbeat, and {queued} job(s) wait",
                "start workers (`fluxstudio worker`) or check why they die: their logs and `worker --check`",
            )
        return Check(
            "workers", WARN, "no live worker heartbeat (fine if workers scale to zero when idle)",
            "start a worker (`fluxstudio worker`) before sending jobs",
        )
    shown = ", ".join(
        f"{b.worker} ({b.age_s(now):.0f} s ago, {b.jobs_running}/{b.concurrency} running)"
        for b in redis.workers[:SHOWN_WORKERS]
    )
    more = len(redis.workers) - SHOWN_WORKERS
    detail = f"{len(redis.workers)} live: {shown}" + (f" and {more} more" if more > 0 else "")
    stale = [b.worker for b in redis.workers if b.age_s(now) > STALE_BEAT_WARN_S]
    if stale:
        return Check("workers", WARN, detail, f"{', '.join(stale)} beat late: overloaded or stuck?")
    return Check("workers", OK, detail)


async def check_storage(settings: Settings) -> list[Check]:
    media_dir = settings.media_dir
    if settings.s3 is not None:
        where = f"s3://{settings.s3.bucket} ({addressing_style(settings.s3)}-style"
        where += f" at {settings.s3.endpoint_url})" if settings.s3.endpoint_url else " on AWS)"
        fix = "check the bucket exists, S3_ENDPOINT_URL, S3_REGION, and that the key pair may write to it"
    else:
        where = f"local folder {media_dir}"
        fix = f"make {media_dir} a folder writable by the user running fluxstudio (uid {os.getuid()})"
    token = secrets.token_hex(8)
    key, body = f"doctor/{token}/probe.txt", f"fluxstudio doctor {token}".encode()
    checks: list[Check] = []
    try:
        async with asyncio.timeout(STORAGE_TIMEOUT_S):
            async with open_storage(settings) as storage:
                started = time.perf_counter()
                await storage.put(key, body, content_type="text/plain")
                read = b"".join([chunk async for chunk in storage.open(key)])
                deleted = await storage.delete_prefix(f"doctor/{token}")
                ms = (time.perf_counter() - started) * 1000
        if read != body or deleted != 1:
            checks.append(Check("storage", FAIL, f"{where}: read back other bytes than written", fix))
        else:
            checks.append(Check("storage", OK, f"{where}: write, read, delete in {ms:.0f} ms"))
    except Exception as exc:
        checks.append(Check("storage", FAIL, f"{where}: {_reason(exc)}", fix))
    if settings.s3 is not None:
        checks.append(await check_clock(settings.s3.endpoint_url or f"https://s3.{settings.s3.region}.amazonaws.com"))
    return checks


async def check_clock(endpoint_url: str) -> Check:
    """S3 signatures carry the time; a clock off by minutes makes every request fail with a 403."""
    try:
        async with httpx.AsyncClient(timeout=CLOCK_TIMEOUT_S) as client:
            sent = time.time()
            response = await client.head(endpoint_url)
            received = time.time()
        server = email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        return Check("clock", WARN, f"could not read the storage's clock: {type(exc).__name__}")
    skew = server - (sent + received) / 2
    detail = f"off the storage's clock by {skew:+.0f} s"
    fix = "sync this machine's clock (NTP): S3 refuses requests signed more than 15 minutes off"
    if abs(skew) > SKEW_FAIL_S:
        return Check("clock", FAIL, detail, fix)
    if abs(skew) > SKEW_WARN_S:
        return Check("clock", WARN, detail, fix)
    return Check("clock", OK, detail)


async def check_ffmpeg(settings: Settings) -> list[Check]:
    fix = "install ffmpeg (Debian: apt-get install ffmpeg) or set FFMPEG_PATH"
    try:
        tools = find_tools(settings.ffmpeg_path, settings.ffprobe_path)
        version = (await _run(tools.ffmpeg, "-hide_banner", "-version")).splitlines()[0]
        encoders = await _run(tools.ffmpeg, "-hide_banner", "-encoders")
    except Exception as exc:
        return [Check("ffmpeg", FAIL, f"not usable: {_reason(exc)}", fix)]
    names = {line.split()[1] for line in encoders.splitlines() if len(line.split()) > 1}
    missing = [name for name in ("libx264", "aac") if name not in names]
    short = " ".join(version.split()[:3])
    if missing:
        return [Check("ffmpeg", FAIL, f"{short} at {tools.ffmpeg} lacks {' and '.join(missing)}",
                      "use a full build (Debian's ffmpeg has both) and point FFMPEG_PATH at it")]
    checks = [Check("ffmpeg", OK, f"{short} at {tools.ffmpeg} with libx264 and aac")]
    if tools.ffprobe is None:
        checks.append(Check("ffprobe", WARN, "not found: media is probed by parsing `ffmpeg -i`",
                            "install Debian's ffmpeg (it brings ffprobe) or set FFPROBE_PATH"))
    return checks


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        async with asyncio.timeout(FFMPEG_TIMEOUT_S):
            out, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise FluxError(f"{os.path.basename(command[0])} exited with status {process.returncode}")
    return out.decode(errors="replace")


def check_mcp(settings: Settings) -> Check:
    if settings.mcp_auth_token is not None:
        return Check("mcp", OK, "MCP_AUTH_TOKEN is set: /mcp accepts it besides API tokens")
    return Check("mcp", OK, "MCP_AUTH_TOKEN is not set: /mcp accepts API tokens only")


async def run_checks(settings: Settings, component: str) -> list[Check]:
    """Every dependency check at once (the slowest bounds the run), in a fixed order for reading."""
    database, redis, storage, ffmpeg = await asyncio.gather(
        check_postgres(settings), check_redis(settings), check_storage(settings), check_ffmpeg(settings)
    )
    checks: list[Any] = [*database.checks, *redis.checks, *storage, *ffmpeg]
    checks += [check_workers(redis, database, read_local(settings.home)), check_queue(database)]
    if component != "worker":
        checks.append(check_mcp(settings))
    return checks
