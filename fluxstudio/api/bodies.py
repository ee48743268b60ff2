"""JSON in and out of handlers: a bounded body read into a pydantic model, a model written as a response.

Validation errors are left to propagate as `pydantic.ValidationError` (422 with where and why, in
`problems.py`); a body that is not JSON at all, or nested deeper than any body of ours
(`JSON_DEPTH_MAX`), is `MalformedRequest` (400). The depth is checked before parsing: 60,000 brackets fit
in the size limit and would make the parser (or the validator) recurse until Python gives up.
"""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from fluxstudio.api.problems import MalformedRequest
from fluxstudio.errors import TooLarge

#: JSON bodies of this API are a few fields; anything bigger is a mistake or an attack.
JSON_BODY_MAX = 64 * 1024
#: The deepest any of our bodies nests is 3; this leaves room and stays far from the recursion limit.
JSON_DEPTH_MAX = 32

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(rb"[\[\]{}]")

M = TypeVar("M", bound=BaseModel)


async def read_model(request: Request, model: type[M], *, empty_ok: bool = False) -> M:
    """The body as `model`; with `empty_ok` an empty body means `{}` (every field at its default)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > JSON_BODY_MAX:
            raise TooLarge(f"a JSON body must be at most {JSON_BODY_MAX} bytes")
    if not raw.strip():
        if empty_ok:
            return model.model_validate({})
        raise MalformedRequest("this request needs a JSON body")
    if too_deep(bytes(raw), JSON_DEPTH_MAX):
        raise MalformedRequest(f"the JSON body nests deeper than {JSON_DEPTH_MAX} levels")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc.__class__.__name__}") from exc
    return model.model_validate(data)


def too_deep(raw: bytes, limit: int) -> bool:
    """Whether the brackets outside strings nest deeper than `limit` (stops counting once they do)."""
    depth = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub(b"", raw)):
        depth += 1 if bracket[0] in b"[{" else -1
        if depth > limit:
            return True
    return False


def respond(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)
