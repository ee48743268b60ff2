"""MCP resources `fluxstudio://assets/{asset_id}` and `fluxstudio://jobs/{job_id}`: an asset or a job as
JSON, for clients that attach context by URI rather than call a tool. Same rules as the tools: another
user's object does not exist.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from fluxstudio.errors import FluxError, NotFound
from fluxstudio.mcp.calls import check_ids, studio_call
from fluxstudio.studio import assets, jobs

ASSET_URI = "fluxstudio://assets/{asset_id}"
JOB_URI = "fluxstudio://jobs/{job_id}"


async def asset_resource(asset_id: str, ctx: Context) -> str:
    call = studio_call(ctx)
    try:
        check_ids({"asset_id": asset_id})
        asset = await assets.get_asset(call.pool, call.user, asset_id, call.urls)
    except FluxError as exc:
        raise _resource_error(exc) from exc
    return asset.model_dump_json()


async def job_resource(job_id: str, ctx: Context) -> str:
    call = studio_call(ctx)
    try:
        check_ids({"job_id": job_id})
        job = await jobs.get_job(call.pool, call.user, job_id)
    except FluxError as exc:
        raise _resource_error(exc) from exc
    return job.model_dump_json()


def _resource_error(exc: FluxError) -> ResourceError:
    kind = ResourceNotFoundError if isinstance(exc, NotFound) else ResourceError
    return kind(f"{exc.code}: {exc.message}")


def add_resources(server: MCPServer) -> None:
    server.resource(
        ASSET_URI,
        name="asset",
        description="A media asset, as get_asset returns it",
        mime_type="application/json",
    )(asset_resource)
    server.resource(
        JOB_URI,
        name="job",
        description="A transcode job, as get_job returns it",
        mime_type="application/json",
    )(job_resource)
