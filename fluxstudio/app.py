"""The app factory: one Starlette app serving `/api/v1`, `/healthz`, `/readyz`, `/metrics`,
`/openapi.json` and `/media`, with the surfaces (`/mcp`, `/collab`, the console at `/`) beside them.

    app = create_app(settings)                               # what `fluxstudio serve` runs
    app = create_app(settings, mounts={"/x": asgi_app})      # tests mount an extra app here

A surface is `surface(settings) -> (routes, lifespans)`. Starlette does not run a mounted app's lifespan,
so a surface that needs one (a collab server's background tasks, the MCP session manager) returns it:
each is entered after the platform (pool, Redis, storage, tools) is open and exited, in reverse, before
it closes. Settings come in as an argument: the factory reads no environment.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from fluxstudio import __version__
from fluxstudio.api.cors import ApiCors
from fluxstudio.api.middleware import RequestContext
from fluxstudio.api.openapi import build_openapi
from fluxstudio.api.problems import EXCEPTION_HANDLERS
from fluxstudio.api.routes import API_OPERATIONS, SERVICE_OPERATIONS
from fluxstudio.api.routing import build_routes
from fluxstudio.collab import collab_surface
from fluxstudio.config import Settings
from fluxstudio.mcp import mcp_surface
from fluxstudio.runtime.platform import Platform, open_platform
from fluxstudio.web import web_surface

SurfaceLifespan = Callable[[Platform], AbstractAsyncContextManager[object]]
Surface = Callable[[Settings], tuple[Sequence[BaseRoute], Sequence[SurfaceLifespan]]]

#: Surfaces every app serves beside the REST API: `surface(settings) -> (routes, lifespans)`.
SURFACES: tuple[Surface, ...] = (mcp_surface, collab_surface, web_surface)


def create_app(
    settings: Settings,
    *,
    mounts: Mapping[str, ASGIApp] | None = None,
    surfaces: Sequence[Surface] | None = None,
) -> Starlette:
    """The API as an ASGI app (`surfaces` replaces SURFACES). Nothing connects until the server runs
    its lifespan."""
    platform = Platform(settings)
    surface_routes: list[BaseRoute] = []
    lifespans: list[SurfaceLifespan] = []
    for surface in SURFACES if surfaces is None else surfaces:
        extra_routes, extra_lifespans = surface(settings)
        surface_routes += extra_routes
        lifespans += extra_lifespans

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_platform(platform), contextlib.AsyncExitStack() as surfaces:
            for surface in lifespans:
                await surfaces.enter_async_context(surface(platform))
            yield

    routes: list[BaseRoute] = [*build_routes(API_OPERATIONS), *build_routes(SERVICE_OPERATIONS)]
    routes += surface_routes
    for path, mounted in (mounts or {}).items():
        routes.append(Mount(path, app=mounted))
    middleware = [
        Middleware(RequestContext, metrics=platform.metrics),
        Middleware(ApiCors, origins=settings.cors_origins),
    ]
    if settings.allowed_hosts != ("*",):  # ALLOWED_HOSTS: any other Host header is a 400
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts)))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.openapi = build_openapi(API_OPERATIONS, version=__version__)
    return app
