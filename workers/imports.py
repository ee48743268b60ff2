"""The URL import, as a recipe: claim → fetch through the outbound guard into a private temporary file
(capped at MAX_UPLOAD_BYTES, within JOB_TIMEOUT_SECONDS) → ingest as an upload → transcode if asked →
clean up in `finally`. What the remote side or the bytes did wrong fails the asset with a reason; what
may pass next time (our storage or database) retries."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path
from typing import Any

import httpx
import structlog

from fluxstudio.errors import FluxError, NotFound, TooLarge, Unavailable
from fluxstudio.log import get_logger
from fluxstudio.outbound import OutboundPolicy, open_following
from fluxstudio.studio import imports, jobs
from fluxstudio.studio.assets import ingest_into
from fluxstudio.studio.models import JobError, JobOptions
from workers.context import WorkerContext

log = get_logger()


async def fetch(policy: OutboundPolicy, url: str, path: Path, max_bytes: int) -> tuple[int, str | None]:
    """Stream `url` into `path`; (size, declared content type). TooLarge past `max_bytes`."""
    async with policy.client() as client, open_following(client, policy, url) as response:
        if response.status_code >= 400:
            raise _RemoteRefused(f"the server answered {response.status_code} {response.reason_phrase}")
        too_large = TooLarge(f"the file is larger than the limit of {max_bytes} bytes (MAX_UPLOAD_BYTES)")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise too_large
        size = 0
        with path.open("wb") as out:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(
                        f"the file is larger than the limit of {max_bytes} bytes (MAX_UPLOAD_BYTES)"
                    )
                await asyncio.to_thread(out.write, chunk)
        return size, response.headers.get("content-type")


class _RemoteRefused(FluxError):
    code = "fetch_failed"


async def import_asset(ctx: dict[str, Any], asset_id: str) -> str:
    """arq's entry point: the row decides whether there is anything to do."""
    w: WorkerContext = ctx["flux"]
    timeout_s = w.settings.job_timeout_seconds
    claim = await imports.claim_import(w.pool, asset_id, lease_s=timeout_s + 120)
    if claim is None:
        return "not queued"
    with structlog.contextvars.bound_contextvars(asset_id=asset_id, attempt=claim.attempt):
        log.info("import_claimed")
        return await _run(w, claim, timeout_s)


async def _run(w: WorkerContext, claim: imports.ImportClaim, timeout_s: int) -> str:
    policy = OutboundPolicy(allowed=w.settings.import_allowed_networks)
    folder = Path(tempfile.mkdtemp(prefix="import-", dir=w.options.work_dir))
    path = folder / "source"
    try:
        try:
            async with asyncio.timeout(timeout_s):
                size, content_type = await fetch(policy, claim.url, path, w.settings.max_upload_bytes)
            asset = await ingest_into(
                w.pool, w.storage, w.tools, claim.asset_id, path, content_type=content_type, size=size,
                max_bytes=w.settings.max_upload_bytes,
            )  # fmt: skip
        except TimeoutError:
            await imports.fail_import(
                w.pool,
                claim,
                JobError(
                    code="timeout", message=f"the import took longer than {timeout_s} s (JOB_TIMEOUT_SECONDS)"
                ),
            )
            return "failed"
        except Unavailable as exc:
            await imports.retry_import(w.pool, w.queue, claim, JobError(code=exc.code, message=exc.message))
            return "retry"
        except FluxError as exc:
            await imports.fail_import(w.pool, claim, JobError(code=exc.code, message=exc.message))
            return "failed"
        except httpx.HTTPError as exc:
            message = f"the file could not be fetched ({type(exc).__name__})"
            await imports.fail_import(w.pool, claim, JobError(code="fetch_failed", message=message))
            return "failed"
        await imports.finish_import(w.pool, claim)
        if asset is None:
            return "asset gone"
        if claim.transcode:
            with contextlib.suppress(NotFound):
                await jobs.create_job(w.pool, w.queue, claim.user, asset.id, JobOptions(),
                                      max_attempts=w.settings.job_max_attempts)  # fmt: skip
        log.info("import_finished", size_bytes=asset.size_bytes)
        return "imported"
    finally:
        await asyncio.to_thread(_remove, folder)


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
