"""CORS for `/api/v1` only, and only for the origins of CORS_ORIGINS, through Starlette's CORSMiddleware.

`/media` answers `*` by itself (public media plays on any page); `/mcp`, `/collab` and the console are
not for other origins' scripts. With `CORS_ORIGINS=*` no credentials are allowed (browsers refuse `*`
with cookies anyway); with a list of origins, each is echoed back and may send cookies.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/api/v1"
#: Request headers this API reads (API.md sections 3, 7 and 9: tus).
ALLOW_HEADERS = (
    "Authorization", "Content-Type", "Idempotency-Key", "Tus-Resumable", "Upload-Length", "Upload-Offset",
    "Upload-Metadata", "Upload-Concat", "Upload-Defer-Length", "X-Request-Id",
)  # fmt: skip
#: Response headers a page's script may read.
EXPOSE_HEADERS = (
    "Location", "Content-Range", "Asset-Id", "Job-Id", "Upload-Offset", "Upload-Length", "Upload-Expires",
    "Upload-Metadata", "Upload-Concat", "Upload-Defer-Length", "Tus-Resumable", "Tus-Version",
    "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm", "X-Request-Id", "Retry-After",
)  # fmt: skip
ALLOW_METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS")


class ApiCors:
    """Pure ASGI: requests under /api/v1 go through CORSMiddleware, everything else straight on."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.cors: ASGIApp | None = None
        if origins:
            self.cors = CORSMiddleware(
                app,
                allow_origins=list(origins),
                allow_methods=list(ALLOW_METHODS),
                allow_headers=list(ALLOW_HEADERS),
                expose_headers=list(EXPOSE_HEADERS),
                allow_credentials=tuple(origins) != ("*",),
                max_age=600,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            self.cors is not None
            and scope["type"] == "http"
            and (path == API_PREFIX or path.startswith(API_PREFIX + "/"))
        ):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
