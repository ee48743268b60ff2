"""Imports from a URL (API.md §9): an asset that says `importing` until a worker has fetched its bytes.

The import's state is a row of `asset_imports`, claimed with a lease like a job (PostgreSQL owns it; arq
only wakes a worker), so a Redis flush or a dead worker delays an import but never loses it: `reconcile`
wakes queued rows again and hands expired leases back. Once fetched, the file is ingested exactly as an
upload is (`assets.ingest_into`: size checks, probe, key layout), then transcoded when asked; a failure
ends the asset `failed` with `error` {code, message}, and an `asset.failed` webhook event.

The URL is checked at once (scheme, a literal private address: 422) and again, address by address, when
the worker connects (`fluxstudio.outbound`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import asyncpg

from fluxstudio.errors import Invalid, NotFound
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.outbound import OutboundPolicy
from fluxstudio.queue import REDIS_ERRORS, Queue, wake_channel
from fluxstudio.studio import webhooks
from fluxstudio.studio.assets import clean_filename, event_data, get_asset
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.models import Asset, JobError
from fluxstudio.studio.projects import get_project
from fluxstudio.studio.users import User

log = get_logger()

IMPORT_ASSET = "import_asset"  # the arq function name the workers register
URL_MAX = 2000
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class ImportClaim:
    asset_id: str
    user: User
    url: str
    transcode: bool
    attempt: int


def _filename_from(url: str) -> str:
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return name or "import"


async def create_import(
    pool: asyncpg.Pool,
    queue: Queue | None,
    user: User,
    project_id: str,
    url: str,
    policy: OutboundPolicy,
    urls: MediaUrls,
    *,
    filename: str | None = None,
    transcode: bool = False,
) -> Asset:
    """The new `importing` asset; a worker fetches `url` into it."""
    if not isinstance(url, str) or len(url) > URL_MAX:
        raise Invalid(f"an import URL is at most {URL_MAX} characters")
    policy.check_url(url)
    await get_project(pool, user, project_id)
    name = clean_filename(filename or _filename_from(url))
    asset_id = new_id("ast")
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO assets (id, project_id, filename, status) VALUES ($1, $2, $3, 'importing')",
            asset_id, project_id, name,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO asset_imports (asset_id, user_id, url, transcode) VALUES ($1, $2, $3, $4)",
            asset_id, user.id, url, bool(transcode),
        )  # fmt: skip
    log.info("import_created", asset_id=asset_id, project_id=project_id)
    await wake_import(queue, asset_id, 0)
    return await get_asset(pool, user, asset_id, urls)


async def wake_import(queue: Queue | None, asset_id: str, attempt: int) -> bool:
    """Enqueue the worker's import of `asset_id`; False when Redis is down (the reconciler retries)."""
    if queue is None:
        return False
    try:
        job = await queue.redis.enqueue_job(
            IMPORT_ASSET, asset_id, _job_id=f"import:{asset_id}:{attempt}", _queue_name=queue.queue_name
        )
        if job is not None:
            await queue.redis.publish(wake_channel(queue.queue_name), b"1")
    except REDIS_ERRORS:
        log.warning("import_wake_deferred", asset_id=asset_id, reason="redis unavailable")
        return False
    return True


async def claim_import(pool: asyncpg.Pool, asset_id: str, *, lease_s: float) -> ImportClaim | None:
    row = await pool.fetchrow(
        "UPDATE asset_imports i SET status = 'running', attempt = i.attempt + 1,"
        " lease_until = now() + make_interval(secs => $2), updated_at = now()"
        " FROM users u WHERE i.asset_id = $1 AND i.status = 'queued' AND u.id = i.user_id"
        " RETURNING i.url, i.transcode, i.attempt, u.id AS user_id, u.email",
        asset_id,
        float(lease_s),
    )
    if row is None:
        return None
    user = User(id=row["user_id"], email=row["email"])
    return ImportClaim(asset_id, user, row["url"], row["transcode"], row["attempt"])


async def finish_import(pool: asyncpg.Pool, claim: ImportClaim) -> None:
    await pool.execute(
        "UPDATE asset_imports SET status = 'done', lease_until = NULL, updated_at = now()"
        " WHERE asset_id = $1 AND attempt = $2",
        claim.asset_id,
        claim.attempt,
    )


async def fail_import(pool: asyncpg.Pool, claim: ImportClaim, error: JobError) -> None:
    """The asset ends `failed` with `error`, and its owner's endpoints hear `asset.failed`."""
    async with pool.acquire() as connection, connection.transaction():
        failed = await connection.fetchval(
            "UPDATE assets SET status = 'failed', error = $2, updated_at = now()"
            " WHERE id = $1 AND status = 'importing' RETURNING true",
            claim.asset_id,
            error.model_dump(),
        )
        await connection.execute(
            "UPDATE asset_imports SET status = 'done', lease_until = NULL, updated_at = now()"
            " WHERE asset_id = $1",
            claim.asset_id,
        )
        if failed:
            data = await event_data(connection, claim.asset_id)
            await webhooks.record_event(connection, claim.user.id, "asset.failed", data)
    log.info("import_failed", asset_id=claim.asset_id, code=error.code, reason=error.message)


async def retry_import(pool: asyncpg.Pool, queue: Queue | None, claim: ImportClaim, error: JobError) -> None:
    """A transient failure: back to `queued` while attempts are left, else failed."""
    if claim.attempt >= MAX_ATTEMPTS:
        await fail_import(pool, claim, error)
        return
    await pool.execute(
        "UPDATE asset_imports SET status = 'queued', lease_until = NULL, updated_at = now()"
        " WHERE asset_id = $1 AND attempt = $2",
        claim.asset_id,
        claim.attempt,
    )
    await wake_import(queue, claim.asset_id, claim.attempt)


async def reconcile(pool: asyncpg.Pool, queue: Queue | None, *, batch: int = 200) -> int:
    """Hand back imports whose worker died, and wake queued ones again (arq drops duplicate wake-ups)."""
    await pool.execute(
        "UPDATE asset_imports SET status = 'queued', lease_until = NULL, updated_at = now()"
        " WHERE status = 'running' AND lease_until < now()"
    )
    rows = await pool.fetch(
        "SELECT asset_id, attempt FROM asset_imports WHERE status = 'queued' ORDER BY created_at LIMIT $1",
        batch,
    )
    woken = 0
    for row in rows:
        if row["attempt"] >= MAX_ATTEMPTS:
            with contextlib.suppress(NotFound):
                claim = await _claim_for_failure(pool, row["asset_id"])
                error = JobError(code="import_interrupted", message="the import was interrupted too often")
                await fail_import(pool, claim, error)
            continue
        if await wake_import(queue, row["asset_id"], row["attempt"]):
            woken += 1
    return woken


async def _claim_for_failure(pool: asyncpg.Pool, asset_id: str) -> ImportClaim:
    row = await pool.fetchrow(
        "SELECT i.url, i.transcode, i.attempt, u.id AS user_id, u.email FROM asset_imports i"
        " JOIN users u ON u.id = i.user_id WHERE i.asset_id = $1",
        asset_id,
    )
    if row is None:
        raise NotFound(asset_id)
    return ImportClaim(asset_id, User(id=row["user_id"], email=row["email"]), row["url"], row["transcode"],
                       row["attempt"])  # fmt: skip
