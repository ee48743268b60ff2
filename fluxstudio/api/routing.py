"""The route table's vocabulary: an `Operation` says everything about one method on one path, once.

Starlette routes are built from the operations (`build_routes`), and so is the OpenAPI description
(`openapi.py`), so what is documented is what is served. Operations on the same path share one Starlette
route, so a wrong method gets a 405 whose `Allow` names every method the path has.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from pydantic import BaseModel
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from fluxstudio.errors import Invalid, NotFound
from fluxstudio.ids import is_id_param

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "header", "path"]
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    summary: str
    #: The success status and the model of its body (None: no body, or see `response_media`).
    status: int = 200
    response: type[BaseModel] | None = None
    #: Set for bodies that are not JSON models, e.g. "text/event-stream".
    response_media: str | None = None
    #: A JSON request body.
    body: type[BaseModel] | None = None
    body_required: bool = True
    #: Non-JSON request bodies by media type, as OpenAPI `content` (uploads).
    body_content: dict[str, Any] | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    auth: bool = True
    tag: str = ""
    operation_id: str = ""


class BoundRoute(Route):
    """A Route that binds its path template into the log context and checks ids before the endpoint runs.

    Ids have one shape (`ids.is_id`), so every `*_id` path parameter is checked here, once for every
    route: a malformed one (a NUL byte, 60 KB of junk) is the same 404 as an unknown id, and never
    reaches PostgreSQL, whose driver would fail on it. A malformed `*_id` query filter is a 422.
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        structlog.contextvars.bind_contextvars(route=self.path)
        check_ids(scope)
        await super().handle(scope, receive, send)


def check_ids(scope: Scope) -> None:
    for name, value in scope.get("path_params", {}).items():
        if name.endswith("_id") and not is_id_param(name, value):
            raise NotFound(f"no {name.removesuffix('_id')} has this id")
    for name, value in QueryParams(scope.get("query_string", b"")).multi_items():
        if name.endswith("_id") and value and not is_id_param(name, value):
            raise Invalid(f"the query parameter {name} is not a valid id")


def build_routes(operations: Iterable[Operation]) -> list[Route]:
    """One BoundRoute per path, dispatching on the method."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for op in operations:
        methods = by_path.setdefault(op.path, {})
        if op.method in methods:
            raise ValueError(f"two operations for {op.method} {op.path}")
        methods[op.method] = op.endpoint
    return [BoundRoute(path, _dispatch(methods), methods=list(methods)) for path, methods in by_path.items()]


def _dispatch(methods: dict[str, Endpoint]) -> Endpoint:
    if len(methods) == 1:
        return next(iter(methods.values()))

    async def dispatch(request: Request) -> Response:
        method = request.method
        if method not in methods and method == "HEAD":  # HEAD is GET without a body, unless it has its own
            method = "GET"
        return await methods[method](request)

    return dispatch
