"""The console at `/` (API.md section 8): a fourth surface beside api/, collab/ and mcp/.

It is static: plain ES modules with an import map (no build step at install time; the npm dependencies
are vendored under `static/vendor` by `scripts/vendor.py` and pinned in `vendor.lock.json`), and it
speaks only the public API, the asset event stream and the Yjs room, with a session cookie.

    assets.py   the static tree: its version hash, gzip, the import map, the page's CSP
    pages.py    the routes: the HTML page for every console path, the versioned static files
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.routing import BaseRoute

from fluxstudio.config import Settings
from fluxstudio.web.assets import StaticTree
from fluxstudio.web.pages import routes

__all__ = ["web_surface"]


def web_surface(
    settings: Settings,
) -> tuple[list[BaseRoute], list[Callable[[Any], AbstractAsyncContextManager[object]]]]:
    """The console's routes (it needs no lifespan: the tree is read once, here)."""
    return routes(StaticTree.load(), settings), []
