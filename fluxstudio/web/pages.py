"""The console's routes: one HTML page for every path the console knows (it routes in the browser), and
the versioned static files, gzipped when the browser accepts it.

The page carries a strict Content-Security-Policy: scripts only from this origin plus the one inline
import map (allowed by its hash), no framing, media and images from this origin or the public media
base. The page itself is `no-cache` (it names the current version); static files are immutable.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from html import escape
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from fluxstudio.config import Settings
from fluxstudio.web.assets import StaticTree

Endpoint = Callable[[Request], Awaitable[Response]]
IMMUTABLE = "public, max-age=31536000, immutable"
#: The modules every view needs, preloaded in parallel rather than discovered import by import.
PRELOAD = ("app/main.js", "app/api.js", "app/ui.js", "app/signin.js", "app/projects.js", "app/project.js",
           "preact", "preact/hooks", "htm/preact", "htm")  # fmt: skip
#: What the review view adds (it is loaded on demand elsewhere): the player and hls.js first of all.
PRELOAD_REVIEW = ("app/asset.js", "app/player.js", "app/draw.js", "app/presence.js", "hls.js")
#: Console paths, all answered with the page.
PAGES = ("/", "/signin", "/projects/{project_id}")
REVIEW = "/assets/{asset_id}"


def routes(tree: StaticTree, settings: Settings) -> list[BaseRoute]:
    csp = _policy(tree, settings)
    headers = {
        "Cache-Control": "no-cache",
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }

    def page(html: str) -> Endpoint:
        async def console(request: Request) -> Response:
            return HTMLResponse(html, headers=headers)

        return console

    async def static(request: Request) -> Response:
        name = request.path_params["path"]
        found = tree.files.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        cache = IMMUTABLE if request.path_params["version"] == tree.version else "no-cache"
        headers = {"Cache-Control": cache, "X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding"}
        body = found.body
        if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body = found.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=found.media_type, headers=headers)

    plain, review = page(_render_page(tree, PRELOAD)), page(_render_page(tree, PRELOAD + PRELOAD_REVIEW))
    return [
        *(Route(path, plain, methods=["GET", "HEAD"]) for path in PAGES),
        Route(REVIEW, review, methods=["GET", "HEAD"]),
        Route("/static/{version}/{path:path}", static, methods=["GET", "HEAD"]),
    ]


def _render_page(tree: StaticTree, modules: tuple[str, ...]) -> str:
    """The page, preloading `modules` (paths under the tree, or bare names the import map resolves)."""
    template = Template((resources.files("fluxstudio.web") / "static" / "index.html").read_text())
    urls = [tree.url(tree.imports.get(name, name)) for name in modules]
    preload = "\n".join(f'  <link rel="modulepreload" href="{escape(url)}">' for url in urls)
    return template.substitute(
        import_map=tree.import_map(),
        stylesheet=escape(tree.url("app/app.css")),
        icon=escape(tree.url("app/icon.svg")),
        main=escape(tree.url("app/main.js")),
        preload=preload,
    )


def _policy(tree: StaticTree, settings: Settings) -> str:
    digest = base64.b64encode(hashlib.sha256(tree.import_map().encode()).digest()).decode()
    media = "'self' blob: data:"
    if settings.public_media_url:
        parts = urlsplit(settings.public_media_url)
        media += f" {parts.scheme}://{parts.netloc}"
    return "; ".join((
        "default-src 'self'",
        f"script-src 'self' 'sha256-{digest}'",
        "style-src 'self'",
        f"img-src {media}",
        f"media-src {media}",
        f"connect-src 'self' {media.replace(' data:', '')}",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ))  # fmt: skip
