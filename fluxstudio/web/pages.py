"""The console's routes: one HTML page for every path the console knows (it routes in the browser), and
the versioned static files, gzipped when the browser accepts it.

The page carries a strict Content-Security-Policy: scripts only from this origin plus the one inline
import map (allowed by its hash), no framing, media and images from this origin or the public media
base. The page itself is `no-cache` (it names the current version); static files are immutable.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from fluxstudio.config import Settings
from fluxstudio.web.assets import StaticTree

IMMUTABLE = "public, max-age=31536000, immutable"
#: The modules the first view needs, preloaded in parallel rather than discovered import by import.
PRELOAD = ("app/main.js", "app/api.js", "app/ui.js", "vendor/preact@10.29.8/dist/preact.module.js",
           "vendor/preact@10.29.8/hooks/dist/hooks.module.js", "vendor/htm@3.1.1/preact/index.module.js",
           "vendor/htm@3.1.1/dist/htm.module.js")  # fmt: skip
#: Console paths, all answered with the page.
PAGES = ("/", "/signin", "/projects/{project_id}", "/assets/{asset_id}")


def routes(tree: StaticTree, settings: Settings) -> list[BaseRoute]:
    page = _render_page(tree)
    csp = _policy(tree, settings)

    async def console(request: Request) -> Response:
        headers = {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        }
        return HTMLResponse(page, headers=headers)

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

    return [
        *(Route(path, console, methods=["GET", "HEAD"]) for path in PAGES),
        Route("/static/{version}/{path:path}", static, methods=["GET", "HEAD"]),
    ]


def _render_page(tree: StaticTree) -> str:
    template = Template((resources.files("fluxstudio.web") / "static" / "index.html").read_text())
    preload = "\n".join(f'  <link rel="modulepreload" href="{escape(tree.url(name))}">' for name in PRELOAD)
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
