"""The route table: every operation of `/api/v1` (API.md section 3) and the endpoints beside it.

Read this file to know what the API serves; `openapi.py` reads it to describe it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fluxstudio.api import (
    assets,
    collab_tokens,
    comments,
    events,
    health,
    jobs,
    media,
    projects,
    sessions,
    uploads,
)
from fluxstudio.api.routing import Operation, Param
from fluxstudio.api.schemas import (
    AssetList,
    Health,
    JobList,
    ProjectCreate,
    ProjectList,
    UploadCreate,
    UploadResult,
    UploadTicket,
)
from fluxstudio.studio.models import Asset, Job, JobOptions, Project

V1 = "/api/v1"

_BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}
_UPLOAD_BODY = {
    "multipart/form-data": {
        "schema": {"type": "object", "properties": {"file": _BINARY}, "required": ["file"]}
    },
    "application/octet-stream": {"schema": _BINARY},
}
_RAW_BODY = {"application/octet-stream": _UPLOAD_BODY["application/octet-stream"]}
_UPLOAD_ERRORS = (400, 404, 413, 422, 503)

_TRANSCODE = Param("transcode", "query", "also start an HLS job with default options",
                   {"type": "boolean", "default": False})
_FILENAME = Param("filename", "query", "the file's name, for a raw body (multipart bodies carry their own)")
_IDEMPOTENCY = Param("Idempotency-Key", "header", "a retried request with the same key returns the same job",
                     {"type": "string", "minLength": 1, "maxLength": 255})
_JOB_STATUS = Param("status", "query", "only jobs in this status",
                    {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]})
_ASSET_ID = Param("asset_id", "query", "only jobs of this asset")

API_OPERATIONS: tuple[Operation, ...] = (
    Operation("POST", f"{V1}/projects", projects.create_project, "Create a project",
              status=201, response=Project, body=ProjectCreate, tag="projects"),
    Operation("GET", f"{V1}/projects", projects.list_projects, "List your projects",
              response=ProjectList, tag="projects"),
    Operation("GET", f"{V1}/projects/{{project_id}}", projects.get_project, "Get a project",
              response=Project, errors=(404,), tag="projects"),
    Operation("POST", f"{V1}/projects/{{project_id}}/assets", uploads.upload_asset,
              "Upload media (multipart field `file`, or a raw body with ?filename=), streamed",
              status=201, response=UploadResult, body_content=_UPLOAD_BODY, params=(_TRANSCODE, _FILENAME),
              errors=_UPLOAD_ERRORS, tag="assets"),
    Operation("GET", f"{V1}/projects/{{project_id}}/assets", assets.list_assets, "List a project's assets",
              response=AssetList, errors=(404,), tag="assets"),
    Operation("POST", f"{V1}/projects/{{project_id}}/uploads", uploads.create_upload_url,
              "Create a one-use upload URL (PUT the raw bytes to it, no token needed)",
              status=201, response=UploadTicket, body=UploadCreate, errors=(404,), tag="uploads"),
    Operation("PUT", f"{V1}/uploads/{{token}}", uploads.put_upload, "Upload through a one-use URL",
              status=201, response=UploadResult, body_content=_RAW_BODY, auth=False,
              errors=(*_UPLOAD_ERRORS, 410), tag="uploads"),
    Operation("GET", f"{V1}/assets/{{asset_id}}", assets.get_asset, "Get an asset",
              response=Asset, errors=(404,), tag="assets"),
    Operation("DELETE", f"{V1}/assets/{{asset_id}}", assets.delete_asset,
              "Delete an asset: cancels its jobs, deletes its stored objects", status=204, errors=(404,),
              tag="assets"),
    Operation("POST", f"{V1}/assets/{{asset_id}}/jobs", jobs.create_job, "Start an HLS transcode",
              status=202, response=Job, body=JobOptions, body_required=False, params=(_IDEMPOTENCY,),
              errors=(404, 409), tag="jobs"),
    Operation("GET", f"{V1}/jobs", jobs.list_jobs, "List your jobs", response=JobList,
              params=(_ASSET_ID, _JOB_STATUS), errors=(422,), tag="jobs"),
    Operation("GET", f"{V1}/jobs/{{job_id}}", jobs.get_job, "Get a job", response=Job, errors=(404,),
              tag="jobs"),
    Operation("GET", f"{V1}/jobs/{{job_id}}/events", events.job_events,
              "Follow a job's progress (Server-Sent Events: status, progress, end)",
              response_media="text/event-stream", errors=(404,), tag="jobs"),
    Operation("POST", f"{V1}/jobs/{{job_id}}/cancel", jobs.cancel_job, "Cancel a job",
              status=202, response=Job, errors=(404, 409), tag="jobs"),
    Operation("POST", f"{V1}/collab/tokens", collab_tokens.create_room_token,
              "Create a short-lived token that opens one collaboration room", status=201,
              response=collab_tokens.RoomToken, body=collab_tokens.RoomTokenCreate, errors=(404, 422),
              tag="collab"),
    Operation("GET", f"{V1}/assets/{{asset_id}}/comments", comments.list_comments,
              "List an asset's comments, replies included, by time", response=comments.CommentList,
              errors=(404,), tag="comments"),
    Operation("POST", f"{V1}/assets/{{asset_id}}/comments", comments.create_comment,
              "Comment on a moment or a range of an asset, or reply", status=201,
              response=comments.Comment, body=comments.CommentCreate, errors=(404, 422), tag="comments"),
    Operation("PATCH", f"{V1}/comments/{{comment_id}}", comments.update_comment,
              "Edit a comment's text (its author only) or resolve it", response=comments.Comment,
              body=comments.CommentUpdate, errors=(403, 404, 422), tag="comments"),
    Operation("DELETE", f"{V1}/comments/{{comment_id}}", comments.delete_comment,
              "Delete a comment and its replies (its author only)", status=204, errors=(403, 404),
              tag="comments"),
    Operation("GET", f"{V1}/assets/{{asset_id}}/events", events.asset_events_stream,
              "Follow an asset (Server-Sent Events: asset, comment, progress)",
              response_media="text/event-stream", errors=(404,), tag="comments"),
    Operation("POST", f"{V1}/session", sessions.create_session,
              "Sign the console in (an API token or a one-time code); sets an HttpOnly session cookie",
              status=201, response=sessions.SessionOut, body=sessions.SessionCreate, auth=False,
              errors=(401, 403, 410, 422), tag="console"),
    Operation("GET", f"{V1}/session", sessions.get_session, "The console's signed-in user and CSRF token",
              response=sessions.SessionOut, tag="console"),
    Operation("DELETE", f"{V1}/session", sessions.delete_session, "Sign the console out", status=204,
              errors=(403,), tag="console"),
)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


SERVICE_OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/healthz", health.healthz, "Liveness", response=Health, auth=False),
    Operation("GET", "/readyz", health.readyz, "Readiness: PostgreSQL and Redis", auth=False),
    Operation("GET", "/metrics", health.metrics, "Prometheus metrics", auth=False),
    Operation("GET", "/openapi.json", openapi_json, "This API's OpenAPI description", auth=False),
    Operation("GET", "/media/{key:path}", media.serve_media, "HLS outputs of local storage", auth=False),
)
