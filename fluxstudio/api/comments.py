"""`/api/v1/assets/{id}/comments` and `/api/v1/comments/{id}` (API.md section 8): translation only, the
rules are `studio/comments.py`'s. A person's comment is authored by the calling user."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.bodies import read_model, respond
from fluxstudio.api.context import platform_of
from fluxstudio.studio import comments
from fluxstudio.studio.comments import Comment, Writer


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_s: float = Field(description="seconds from the start, within the asset's duration")
    text: str = Field(description="1 to 10,000 characters")
    duration_s: float | None = Field(default=None, description="null for a point, else the range's length")
    annotation: dict[str, Any] | None = Field(
        default=None, description="`{shapes: [{type, points: [[x, y], …], color, width}]}`, 0..1 of the frame"
    )
    parent_id: str | None = Field(default=None, description="a top-level comment of the same asset")


class CommentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    resolved: bool | None = None


class CommentList(BaseModel):
    items: list[Comment]


async def list_comments(request: Request) -> Response:
    user = await require_user(request)
    items = await comments.list_comments(platform_of(request).pool, user, request.path_params["asset_id"])
    return respond(CommentList(items=items))


async def create_comment(request: Request) -> Response:
    user = await require_user(request)
    body = await read_model(request, CommentCreate)
    platform = platform_of(request)
    comment = await comments.add_comment(
        platform.pool,
        platform.queue,
        Writer.person(user),
        request.path_params["asset_id"],
        time_s=body.time_s,
        text=body.text,
        duration_s=body.duration_s,
        annotation=body.annotation,
        parent_id=body.parent_id,
    )
    return respond(comment, 201)


async def update_comment(request: Request) -> Response:
    user = await require_user(request)
    body = await read_model(request, CommentUpdate)
    platform = platform_of(request)
    comment = await comments.update_comment(
        platform.pool,
        platform.queue,
        Writer.person(user),
        request.path_params["comment_id"],
        text=body.text,
        resolved=body.resolved,
    )
    return respond(comment)


async def delete_comment(request: Request) -> Response:
    user = await require_user(request)
    platform = platform_of(request)
    await comments.delete_comment(
        platform.pool, platform.queue, Writer.person(user), request.path_params["comment_id"]
    )
    return Response(status_code=204)
