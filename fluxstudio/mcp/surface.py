"""The MCP server and how it is served: Streamable HTTP at exactly `/mcp`, stateless, bearer-protected.

Choices, each for a reason found the hard way:
- `Route("/mcp")`, not `Mount("/mcp")`: a mount answers `POST /mcp` with a 307 to `/mcp/`, which some
  hosted connectors do not follow.
- Stateless: any API replica answers any request (no session lives in one process). Responses stay SSE
  (`json_response=False`), which is what carries progress notifications back on a tool call's own POST.
- The session manager runs in the app's lifespan (`McpSurface.running`): Starlette does not run a routed
  sub-app's lifespan, and the SDK's manager can run only once, so the server is built per app.
- Host/Origin checks are off. The SDK enables them for localhost only, to stop DNS rebinding against
  servers that trust whoever reaches them; here every request needs a bearer token, which a rebinding
  page cannot have, and a deployment's host names (replicas, a proxy, a PaaS domain) are not ours to list.
- `GET /mcp` is 405 (`Allow: POST`), as the transport allows: stateless, the server never sends on a
  standalone stream, so the SDK's GET would hold a connection (and a task) open for nothing, forever.
- Auth through the SDK's token-verifier seam (`auth.StudioTokenVerifier`). No OAuth discovery is
  advertised: no authorization server and no protected-resource metadata are configured, so none is
  served and the 401 names none. `AuthSettings` needs an issuer URL even so; it is used for nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fluxstudio import __version__
from fluxstudio.config import Settings
from fluxstudio.log import get_logger
from fluxstudio.mcp.auth import StudioTokenVerifier
from fluxstudio.mcp.resources import add_resources
from fluxstudio.mcp.tools import add_tools

if TYPE_CHECKING:  # a type only: surfaces do not import each other at run time
    from fluxstudio.runtime.platform import Platform

MCP_PATH = "/mcp"
#: Required by the SDK's AuthSettings, never served or sent: we configure no OAuth.
_UNUSED_ISSUER = "http://localhost/"

INSTRUCTIONS = """\
FluxStudio turns media files into adaptive HLS streams. To go from a local file to a playback URL:
create_project (or list_projects), create_upload and run the `curl` command it returns where the file is,
transcode_asset with the new asset's id, wait_for_job until the job has succeeded (call it again while it
is still running), then get_playback_url."""

#: `component=mcp` is bound per request (see _SpeakingAsMcp), so the SDK's own lines carry it too.
log = get_logger()


class McpSurface:
    """One MCP server, its `/mcp` route and the lifespan that runs it with the platform's resources."""

    def __init__(self, settings: Settings) -> None:
        self._platform: Platform | None = None
        self.server: MCPServer[Any] = MCPServer(
            "fluxstudio",
            title="FluxStudio",
            instructions=INSTRUCTIONS,
            version=__version__,
            token_verifier=StudioTokenVerifier(self._pool, settings.mcp_auth_token),
            auth=AuthSettings(issuer_url=_UNUSED_ISSUER, resource_server_url=None),
            lifespan=self._lifespan,
        )
        add_tools(self.server)
        add_resources(self.server)
        app = self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=False,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.routes: list[BaseRoute] = [Route(MCP_PATH, endpoint=_SpeakingAsMcp(app))]

    def _pool(self) -> asyncpg.Pool:
        assert self._platform is not None and self._platform.pool is not None, "the app has not started"
        return self._platform.pool

    @contextlib.asynccontextmanager
    async def _lifespan(self, server: MCPServer[Any]) -> AsyncIterator[Platform]:
        # The MCP server's lifespan state is what tools find in `ctx.request_context.lifespan_context`.
        assert self._platform is not None
        yield self._platform

    @contextlib.asynccontextmanager
    async def running(self, platform: Platform) -> AsyncIterator[None]:
        """Entered by the app's lifespan once the platform is open."""
        self._platform = platform
        async with self.server.session_manager.run():
            log.info("mcp_started", component="mcp", path=MCP_PATH, stateless=True)
            yield
        log.info("mcp_stopped", component="mcp")


class _SpeakingAsMcp:
    """Every line logged while serving `/mcp` (ours, the SDK's, studio's) says `component: mcp`.

    A class, not a function: Starlette's `Route` takes a plain function for a request handler (GET only)
    and anything else for an ASGI app, which must see every method.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            refusal = JSONResponse(
                {"error": "this stateless server offers no SSE stream on GET; POST JSON-RPC messages"},
                status_code=405,
                headers={"Allow": "POST"},
            )
            await refusal(scope, receive, send)
            return
        with structlog.contextvars.bound_contextvars(component="mcp"):
            await self.app(scope, receive, send)


SurfaceLifespan = Callable[[Any], AbstractAsyncContextManager[object]]


def mcp_surface(settings: Settings) -> tuple[Sequence[BaseRoute], Sequence[SurfaceLifespan]]:
    """What `create_app` needs to serve MCP: the `/mcp` route, and the lifespan that runs it."""
    surface = McpSurface(settings)
    return surface.routes, [surface.running]
