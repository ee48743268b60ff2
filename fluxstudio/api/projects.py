"""`/api/v1/projects`: create, list and read the caller's projects."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fluxstudio.api.auth import require_user
from fluxstudio.api.bodies import read_model, respond
from fluxstudio.api.context import platform_of
from fluxstudio.api.schemas import ProjectCreate, ProjectList
from fluxstudio.studio import projects


async def create_project(request: Request) -> Response:
    user = await require_user(request)
    body = await read_model(request, ProjectCreate)
    project = await projects.create_project(platform_of(request).pool, user, body.name)
    return respond(project, 201)


async def list_projects(request: Request) -> Response:
    user = await require_user(request)
    items = await projects.list_projects(platform_of(request).pool, user)
    return respond(ProjectList(items=items))


async def get_project(request: Request) -> Response:
    user = await require_user(request)
    project = await projects.get_project(platform_of(request).pool, user, request.path_params["project_id"])
    return respond(project)
