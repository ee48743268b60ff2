"""The MCP tools: thin translations of `studio/` operations, each returning a typed model.

Docstrings here are the tool descriptions an agent reads, so they say what to call next. Annotations
tell a client which tools only read (safe to run without asking) and which destroy work (`cancel_job`).
Errors come back as tool errors through `calls.tool_errors`.
"""

from __future__ import annotations

import shlex
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image
from mcp_types import ToolAnnotations
from pydantic import Field

from fluxstudio.mcp import waiting
from fluxstudio.mcp.auth import MCP_TOKEN_CLIENT, credential
from fluxstudio.mcp.calls import StudioCall, studio_call, tool_errors
from fluxstudio.mcp.models import AssetList, CommentList, Playback, ProjectList, UploadTicket
from fluxstudio.outbound import OutboundPolicy
from fluxstudio.studio import assets, comments, imports, jobs, playback, projects, thumbnails, tokens, uploads
from fluxstudio.studio.comments import Comment, Writer
from fluxstudio.studio.models import Asset, Job, JobOptions, Project

#: Where a capability is spent; the same public path the REST API hands out.
UPLOAD_PATH = "/api/v1/uploads/"

ProjectId = Annotated[str, Field(description="a project id, e.g. prj_...")]
AssetId = Annotated[str, Field(description="an asset id, e.g. ast_...")]
JobId = Annotated[str, Field(description="a job id, e.g. job_...")]
CommentId = Annotated[str, Field(description="a comment id, e.g. cmt_...")]
#: The name an agent that came with the deployment's MCP_AUTH_TOKEN is shown under.
MCP_AGENT_NAME = "MCP agent"

# Closed world: the tools touch only this deployment's projects, assets and jobs.
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CREATE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
DESTROY = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
#: Reaches outside this deployment: the server fetches a URL the agent gives.
CREATE_OPEN = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)


@tool_errors
async def list_projects(ctx: Context) -> ProjectList:
    """List your projects (folders of media assets), oldest first."""
    call = studio_call(ctx)
    return ProjectList(items=await projects.list_projects(call.pool, call.user))


@tool_errors
async def create_project(
    name: Annotated[str, Field(description="1 to 200 characters")], ctx: Context
) -> Project:
    """Create a project to upload media into."""
    call = studio_call(ctx)
    return await projects.create_project(call.pool, call.user, name)


@tool_errors
async def list_assets(project_id: ProjectId, ctx: Context) -> AssetList:
    """List the media assets of a project, with their status and, once ready, playback URL."""
    call = studio_call(ctx)
    return AssetList(items=await assets.list_assets(call.pool, call.user, project_id, call.urls))


@tool_errors
async def get_asset(asset_id: AssetId, ctx: Context) -> Asset:
    """Read one asset: status (uploaded, processing, ready, failed), probed media details, renditions."""
    call = studio_call(ctx)
    return await assets.get_asset(call.pool, call.user, asset_id, call.urls)


@tool_errors
async def create_upload(
    project_id: ProjectId,
    filename: Annotated[
        str, Field(description="the local file to upload: its name or path (the asset keeps the last part)")
    ],
    ctx: Context,
    transcode: Annotated[
        bool, Field(description="also start an HLS transcode when the upload lands")
    ] = False,
) -> UploadTicket:
    """Get a one-use URL to upload a local file into a project, and the `curl` command that does it.

    Media bytes never pass through MCP: run the returned `curl` command where the file is. It prints
    `{"asset": {...}, "job": ...}`; then call transcode_asset with the asset's id (unless `transcode`
    was true, in which case `job` is already there) and wait_for_job. The URL works once and expires.
    """
    call = studio_call(ctx)
    grant = await uploads.create_upload(call.pool, call.user, project_id, filename, transcode=transcode)
    url = call.base_url + UPLOAD_PATH + grant.token if call.base_url else ""
    return UploadTicket(
        upload_id=grant.id,
        project_id=project_id,
        upload_url=url,
        expires_at=grant.expires_at,
        curl=f"curl -sS -T {shlex.quote(filename)} {shlex.quote(url)}",
        transcode=transcode,
    )


@tool_errors
async def transcode_asset(
    asset_id: AssetId,
    ctx: Context,
    renditions: Annotated[
        list[str] | None,
        Field(description="e.g. ['720p', '480p']; default 1080p, 720p, 480p, 360p capped at the source size"),
    ] = None,
    idempotency_key: Annotated[
        str | None, Field(description="retrying with the same key returns the same job instead of a new one")
    ] = None,
) -> Job:
    """Start an HLS transcode of an uploaded asset. Returns the queued job at once; follow it with
    wait_for_job, then call get_playback_url."""
    call = studio_call(ctx)
    return await jobs.create_job(
        call.pool,
        call.platform.queue,
        call.user,
        asset_id,
        JobOptions(renditions=renditions),
        idempotency_key=idempotency_key,
        max_attempts=call.platform.settings.job_max_attempts,
    )


@tool_errors
async def get_job(job_id: JobId, ctx: Context) -> Job:
    """Read a job: status (queued, running, succeeded, failed, cancelled), progress 0..1, error if any."""
    call = studio_call(ctx)
    return await jobs.get_job(call.pool, call.user, job_id)


@tool_errors
async def wait_for_job(
    job_id: JobId,
    ctx: Context,
    timeout_s: Annotated[
        float, Field(gt=0, le=waiting.MAX_WAIT_S, description="how long to wait, at most 45 seconds")
    ] = 30.0,
) -> Job:
    """Wait until a job finishes or `timeout_s` passes, sending progress notifications meanwhile.

    Returns the job as it stands: if its status is still queued or running, call again.
    """
    call = studio_call(ctx)

    async def report(value: float, message: str) -> None:
        await ctx.report_progress(value, 1.0, message)

    return await waiting.wait_for_job(call, job_id, timeout_s, report)


@tool_errors
async def cancel_job(job_id: JobId, ctx: Context) -> Job:
    """Cancel a queued or running job: its ffmpeg is stopped and its partial output deleted."""
    call = studio_call(ctx)
    return await jobs.cancel_job(call.pool, call.platform.queue, call.user, job_id)


@tool_errors
async def get_playback_url(asset_id: AssetId, ctx: Context) -> Playback:
    """The HLS playback URL (master playlist) of a playable asset, with its renditions, poster, storyboard
    and MP4. For a signed asset the URLs carry a fresh playback token, valid until `expires_at`."""
    call = studio_call(ctx)
    asset = await assets.get_asset(call.pool, call.user, asset_id, call.urls)
    if asset.playable and asset.playback_policy == "signed":
        signing_key = call.platform.settings.playback_signing_key
        token = await playback.create_token(call.pool, call.user, asset_id, signing_key, call.urls)
        assert token.playback_url is not None
        return Playback(
            asset_id=asset.id, playback_url=token.playback_url, renditions=[], playable=True,
            playback_policy="signed", poster_url=token.poster_url, storyboard_url=token.storyboard_url,
            mp4_url=token.mp4_url, expires_at=token.expires_at,
        )  # fmt: skip
    if asset.playback_url is None:
        next_step = {
            "uploaded": "start one with transcode_asset",
            "processing": "wait for its job with wait_for_job",
            "failed": "its last transcode failed; see get_job for the error, or start another",
        }.get(asset.status, "")
        raise ToolError(f"not_ready: asset {asset_id} is {asset.status}, no playback URL yet; {next_step}")
    return Playback(
        asset_id=asset.id, playback_url=asset.playback_url, renditions=asset.renditions, playable=True,
        playback_policy=asset.playback_policy, poster_url=asset.poster_url,
        storyboard_url=asset.storyboard_url, mp4_url=asset.mp4_url,
    )  # fmt: skip


@tool_errors
async def import_from_url(
    project_id: ProjectId,
    url: Annotated[str, Field(description="an http:// or https:// URL of an audio or video file")],
    ctx: Context,
    filename: Annotated[str | None, Field(description="the asset's name (default: from the URL)")] = None,
    transcode: Annotated[bool, Field(description="also start an HLS transcode once it has landed")] = False,
) -> Asset:
    """Import a file that is already online: the server fetches the URL itself (no curl needed).

    Returns the new asset at once with status `importing`; call get_asset until it is `uploaded` (or
    `processing` with transcode) or `failed`, whose `error` says why (e.g. a private address, a 404).
    """
    call = studio_call(ctx)
    policy = OutboundPolicy(allowed=call.platform.settings.import_allowed_networks)
    return await imports.create_import(
        call.pool, call.platform.queue, call.user, project_id, url, policy, call.urls,
        filename=filename, transcode=transcode,
    )  # fmt: skip


@tool_errors
async def list_comments(asset_id: AssetId, ctx: Context) -> CommentList:
    """The asset's time-coded review comments, replies included, ordered by time (`time_s`, seconds).

    Each has an author (a person or an agent), the moment it is about, an optional range (`duration_s`)
    and drawing, `parent_id` for a reply, and whether it is resolved."""
    call = studio_call(ctx)
    return CommentList(items=await comments.list_comments(call.pool, call.user, asset_id))


@tool_errors
async def add_comment(
    asset_id: AssetId,
    time_s: Annotated[float, Field(ge=0, description="the moment, in seconds from the start")],
    text: Annotated[str, Field(min_length=1, max_length=comments.TEXT_MAX, description="what to say")],
    ctx: Context,
    duration_s: Annotated[
        float | None, Field(gt=0, description="for a range: its length in seconds, from time_s")
    ] = None,
    parent_id: Annotated[str | None, Field(description="reply to this top-level comment")] = None,
) -> Comment:
    """Comment on a moment (or a range) of an asset, or reply to a comment. People reviewing the asset in
    the console see it appear at once, under this agent's name (the name of its API token)."""
    call = studio_call(ctx)
    comment = await comments.add_comment(
        call.pool, call.platform.queue, await _agent(call, ctx), asset_id,
        time_s=time_s, text=text, duration_s=duration_s, parent_id=parent_id,
    )  # fmt: skip
    return comment


@tool_errors
async def resolve_comment(comment_id: CommentId, ctx: Context) -> Comment:
    """Mark a comment resolved (the point it raised has been dealt with)."""
    call = studio_call(ctx)
    writer = await _agent(call, ctx)
    return await comments.update_comment(call.pool, call.platform.queue, writer, comment_id, resolved=True)


@tool_errors
async def get_frame(
    asset_id: AssetId,
    time_s: Annotated[float, Field(ge=0, description="the moment, in seconds from the start")],
    ctx: Context,
    width: Annotated[
        int | None,
        Field(ge=thumbnails.MIN_WIDTH, description="pixels wide (default 640, at most the source's)"),
    ] = None,
) -> Image:
    """Look at the asset's frame at `time_s` (a JPEG, accurate to one frame), e.g. before commenting on
    that moment with add_comment. Works as soon as the asset is uploaded."""
    call = studio_call(ctx)
    jpeg = await thumbnails.thumbnail(call.platform, call.user, asset_id, time_s, width)
    return Image(data=jpeg, format="jpeg")


async def _agent(call: StudioCall, ctx: Context) -> Writer:
    """The caller as a comment's author: an agent, named after its API token (`tokens create NAME`)."""
    client_id, token_hash = credential(ctx)
    if client_id == MCP_TOKEN_CLIENT:
        return Writer(call.user, "mcp", MCP_AGENT_NAME, "agent")
    token = await tokens.token_named(call.pool, token_hash)
    return Writer(call.user, token.id, token.name, "agent")


#: In the order an agent meets them, which is the order clients list them in.
TOOLS = (
    (list_projects, READ), (create_project, CREATE), (list_assets, READ), (get_asset, READ),
    (create_upload, CREATE), (import_from_url, CREATE_OPEN), (transcode_asset, CREATE), (get_job, READ),
    (wait_for_job, READ), (cancel_job, DESTROY), (get_playback_url, READ), (list_comments, READ),
    (add_comment, CREATE), (resolve_comment, CREATE), (get_frame, READ),
)  # fmt: skip


def add_tools(server: MCPServer) -> None:
    for fn, hints in TOOLS:
        server.add_tool(fn, annotations=hints)
