"""`/api/v1` jobs: start a transcode of an asset, list and read jobs, cancel one.

`Idempotency-Key` on creation makes a retried request safe: the same key for the same asset returns the
same job (`studio.jobs.create_job` decides; a key reused with other options is a 409).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.bodies import read_model, respond
from fluxstudio.api.context import platform_of
from fluxstudio.api.schemas import JobList
from fluxstudio.studio import jobs
from fluxstudio.studio.models import JobOptions

IDEMPOTENCY_HEADER = "idempotency-key"


async def create_job(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    options = await read_model(request, JobOptions, empty_ok=True)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    job = await jobs.create_job(
        platform.pool, platform.queue, user, request.path_params["asset_id"], options,
        idempotency_key=key, max_attempts=platform.settings.job_max_attempts,
    )
    return respond(job, 202)


async def list_jobs(request: Request) -> Response:
    user = await require_user(request)
    query = request.query_params
    asset_id, status = query.get("asset_id") or None, query.get("status") or None
    items = await jobs.list_jobs(platform_of(request).pool, user, asset_id=asset_id, status=status)
    return respond(JobList(items=items))


async def get_job(request: Request) -> Response:
    user = await require_user(request)
    return respond(await jobs.get_job(platform_of(request).pool, user, request.path_params["job_id"]))


async def cancel_job(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    job = await jobs.cancel_job(platform.pool, platform.queue, user, request.path_params["job_id"])
    return respond(job, 202)
