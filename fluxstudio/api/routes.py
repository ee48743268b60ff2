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
    imports,
    jobs,
    media,
    projects,
    sessions,
    tus,
    uploads,
    webhooks,
)
from fluxstudio.api.routing import Operation, Param
from fluxstudio.api.schemas import (
    AssetList,
    AssetPatch,
    Health,
    ImportCreate,
    JobList,
    PlaybackTokenCreate,
    ProjectCreate,
    ProjectList,
    UploadCreate,
    UploadResult,
    UploadTicket,
    WebhookAttemptList,
    WebhookCreate,
    WebhookList,
    WebhookTestResult,
)
from fluxstudio.studio.models import Asset, Job, JobOptions, PlaybackToken, Project
from fluxstudio.studio.webhooks import WebhookEndpoint

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
_TUS_BODY = {"application/offset+octet-stream": {"schema": _BINARY}}

_TRANSCODE = Param("transcode", "query", "also start an HLS job with default options",
                   {"type": "boolean", "default": False})
_FILENAME = Param("filename", "query", "the file's name, for a raw body (multipart bodies carry their own)")
_IDEMPOTENCY = Param("Idempotency-Key", "header", "a retried request with the same key returns the same job",
                     {"type": "string", "minLength": 1, "maxLength": 255})
_JOB_STATUS = Param("status", "query", "only jobs in this status",
                    {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]})
_ASSET_ID = Param("asset_id", "query", "only jobs of this asset")
_TIME = Param("time", "query", "seconds from the start, in [0, duration)", {"type": "number", "default": 0})
_WIDTH = Param("width", "query", "pixels, 16 and up, capped at the source width",
               {"type": "integer", "minimum": 16, "default": 640})

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
    Operation("PATCH", f"{V1}/assets/{{asset_id}}", assets.patch_asset,
              "Change an asset's playback policy (public or signed)", response=Asset, body=AssetPatch,
              errors=(404, 409, 422), tag="assets"),
    Operation("GET", f"{V1}/assets/{{asset_id}}/thumbnail", assets.thumbnail,
              "A frame of the asset as JPEG, at a time (within one frame) and width",
              response_media="image/jpeg", params=(_TIME, _WIDTH), errors=(404, 409, 422), tag="assets"),
    Operation("POST", f"{V1}/assets/{{asset_id}}/playback-tokens", assets.create_playback_token,
              "Signed playback: URLs that work until expires_at", status=201, response=PlaybackToken,
              body=PlaybackTokenCreate, body_required=False, errors=(404, 409, 422), tag="assets"),
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
    Operation("POST", f"{V1}/projects/{{project_id}}/imports", imports.create_import,
              "Import media from an http(s) URL: a worker fetches it into a new `importing` asset",
              status=202, response=UploadResult, body=ImportCreate, errors=(404, 422), tag="assets"),
    Operation("POST", f"{V1}/webhooks", webhooks.create_endpoint,
              "Add a webhook endpoint (its `secret` is shown only in this answer)",
              status=201, response=WebhookEndpoint, body=WebhookCreate, errors=(422,), tag="webhooks"),
    Operation("GET", f"{V1}/webhooks", webhooks.list_endpoints, "List your webhook endpoints",
              response=WebhookList, tag="webhooks"),
    Operation("DELETE", f"{V1}/webhooks/{{webhook_id}}", webhooks.delete_endpoint,
              "Delete a webhook endpoint; its pending deliveries stop", status=204, errors=(404,),
              tag="webhooks"),
    Operation("GET", f"{V1}/webhooks/{{webhook_id}}/deliveries", webhooks.list_deliveries,
              "The endpoint's delivery attempts, newest first", response=WebhookAttemptList, errors=(404,),
              tag="webhooks"),
    Operation("POST", f"{V1}/webhooks/{{webhook_id}}/test", webhooks.send_test,
              "Send a `webhook.test` event to the endpoint", status=202, response=WebhookTestResult,
              errors=(404,), tag="webhooks"),
    # tus 1.0.0 (API.md §9): the protocol's headers are its parameters, see fluxstudio/api/tus.py.
    Operation("OPTIONS", f"{V1}/tus", tus.options, "tus: versions, extensions and the size limit",
              status=204, auth=False, tag="tus", operation_id="tus_options"),
    Operation("POST", f"{V1}/tus", tus.create,
              "tus: create a resumable upload (Upload-Length, Upload-Metadata: project_id, filename)",
              status=201, body_content=_TUS_BODY, errors=(400, 404, 412, 413, 422), tag="tus",
              operation_id="tus_create"),
    Operation("OPTIONS", f"{V1}/tus/{{tus_id}}", tus.options, "tus: versions and extensions",
              status=204, auth=False, tag="tus", operation_id="tus_upload_options"),
    Operation("HEAD", f"{V1}/tus/{{tus_id}}", tus.head, "tus: the upload's offset", errors=(404, 412),
              tag="tus", operation_id="tus_head"),
    Operation("PATCH", f"{V1}/tus/{{tus_id}}", tus.patch,
              "tus: append bytes at Upload-Offset; the last byte answers Asset-Id (and Job-Id)",
              status=204, body_content=_TUS_BODY, errors=(404, 409, 412, 415, 422, 503), tag="tus",
              operation_id="tus_patch"),
    Operation("DELETE", f"{V1}/tus/{{tus_id}}", tus.delete, "tus: terminate an unfinished upload",
              status=204, errors=(404, 409, 412), tag="tus", operation_id="tus_delete"),
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
    Operation("OPTIONS", "/media/{key:path}", media.preflight, "CORS preflight for /media", auth=False),
)
