"""`/api/v1/webhooks` (API.md §10): a user's endpoints, their delivery log, and a test event.

The rules (URL checks, the secret shown once, ownership) are `studio/webhooks.py`; delivery is the
workers' (`workers/webhooks.py`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.bodies import read_model, respond
from fluxstudio.api.context import platform_of
from fluxstudio.api.schemas import WebhookAttemptList, WebhookCreate, WebhookList, WebhookTestResult
from fluxstudio.outbound import OutboundPolicy
from fluxstudio.studio import webhooks


async def create_endpoint(request: Request) -> Response:
    user = await require_user(request)
    body = await read_model(request, WebhookCreate)
    platform = platform_of(request)
    policy = OutboundPolicy(allowed=platform.settings.import_allowed_networks)
    endpoint = await webhooks.create_endpoint(platform.pool, user, body.url, body.events, policy)
    return respond(endpoint, 201)


async def list_endpoints(request: Request) -> Response:
    user = await require_user(request)
    return respond(WebhookList(items=await webhooks.list_endpoints(platform_of(request).pool, user)))


async def delete_endpoint(request: Request) -> Response:
    user = await require_user(request)
    await webhooks.delete_endpoint(platform_of(request).pool, user, request.path_params["webhook_id"])
    return Response(status_code=204)


async def list_deliveries(request: Request) -> Response:
    user = await require_user(request)
    items = await webhooks.list_attempts(platform_of(request).pool, user, request.path_params["webhook_id"])
    return respond(WebhookAttemptList(items=items))


async def send_test(request: Request) -> Response:
    user = await require_user(request)
    event_id = await webhooks.send_test(platform_of(request).pool, user, request.path_params["webhook_id"])
    return respond(WebhookTestResult(event_id=event_id), 202)
