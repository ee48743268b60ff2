"""Liveness, readiness and the metrics scrape: the endpoints an orchestrator and Prometheus poll.

`/healthz` answers 200 whenever the process can answer at all, and touches nothing: a liveness probe that
checked PostgreSQL would make the orchestrator restart every API replica during a database failover,
which helps nobody. `/readyz` checks the dependencies, each with a short timeout so a hung dependency
makes the probe fail rather than hang: PostgreSQL unreachable or not migrated to head is 503 (this replica
cannot serve); Redis down is 200 "degraded" (reads and uploads work; new jobs wait in PostgreSQL).

`/readyz` needs no login, so it answers status words only (`ok`, `down`, `not_migrated`): no error text,
host, port, socket path or revision. Why a check failed is for `fluxstudio doctor`, and for the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fluxstudio import __version__
from fluxstudio.api.context import platform_of
from fluxstudio.db.migrations import current_revision
from fluxstudio.heartbeat import read_fleet
from fluxstudio.log import get_logger
from fluxstudio.runtime.metrics import CONTENT_TYPE_LATEST, read_job_stats

DATABASE_CHECK_TIMEOUT_S = 2.0
REDIS_CHECK_TIMEOUT_S = 1.0

log = get_logger()


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok", "component": "api", "version": __version__})


async def readyz(request: Request) -> Response:
    platform = platform_of(request)
    database, redis = await asyncio.gather(_check_database(request), _check_redis(request))
    if database["status"] != "ok":
        status, code = "unavailable", 503
    elif redis["status"] != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    platform.observe_readiness(status)
    for name, check in (("database", database), ("redis", redis)):
        if check["status"] != "ok":
            log.debug("readiness_check_failed", check=name, status=check["status"], error=check.get("error"))
    checks = {"database": {"status": database["status"]}, "redis": {"status": redis["status"]}}
    return JSONResponse({"status": status, "checks": checks}, code)


async def _check_database(request: Request) -> dict[str, Any]:
    platform = platform_of(request)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(DATABASE_CHECK_TIMEOUT_S):
            revision = await current_revision(platform.pool)
    except TimeoutError:
        return {"status": "down", "error": f"no answer within {DATABASE_CHECK_TIMEOUT_S} s"}
    except Exception as exc:  # any failure is "not ready"; the reason is reported, not raised
        return {"status": "down", "error": _reason(exc)}
    check: dict[str, Any] = {"status": "ok", "revision": revision, "latency_ms": _ms(started)}
    if revision != platform.head_revision:
        check.update(status="not_migrated", expected_revision=platform.head_revision)
        check["error"] = "run `fluxstudio migrate`"
    return check


async def _check_redis(request: Request) -> dict[str, Any]:
    queue = platform_of(request).queue
    if queue is None:
        return {"status": "down", "error": "not connected (retrying in the background)"}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(REDIS_CHECK_TIMEOUT_S):
            await queue.ping()
    except TimeoutError:
        return {"status": "down", "error": f"no answer within {REDIS_CHECK_TIMEOUT_S} s"}
    except Exception as exc:
        return {"status": "down", "error": _reason(exc)}
    return {"status": "ok", "latency_ms": _ms(started)}


async def metrics(request: Request) -> Response:
    """Prometheus text; the fleet's job figures are read from PostgreSQL now, not cached."""
    platform = platform_of(request)
    stats = None
    try:
        stats = await read_job_stats(platform.pool)
        platform.metrics.database_up.set(1)
    except Exception as exc:
        platform.metrics.database_up.set(0)
        log.debug("metrics_jobs_unavailable", error=_reason(exc))
    redis_ok = (await _check_redis(request))["status"] == "ok"
    platform.metrics.redis_up.set(1 if redis_ok else 0)
    if redis_ok and platform.queue is not None:
        with contextlib.suppress(Exception):  # a scrape never fails for want of worker counts
            platform.metrics.observe_fleet(await read_fleet(platform.queue.redis, platform.queue.queue_name))
    return Response(platform.metrics.render(stats), media_type=CONTENT_TYPE_LATEST)


def _reason(exc: BaseException) -> str:
    """What went wrong, for an operator; our errors carry safe messages, foreign ones show their type."""
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) else type(exc).__name__


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
