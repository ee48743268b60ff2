"""The OpenAPI 3.1 description of `/api/v1`, built from the route table and the pydantic models.

Nothing here is written twice: paths, methods, parameters and statuses come from the `Operation`s that
the routes are built from; schemas are the models' own JSON Schemas (OpenAPI 3.1 speaks JSON Schema
2020-12, which is what pydantic emits), collected under `components/schemas` in one pass so that a model
used by several operations is described once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from fluxstudio.api.problems import PROBLEM_JSON
from fluxstudio.api.routing import Operation
from fluxstudio.api.schemas import Problem

API_PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


def build_openapi(operations: Iterable[Operation], *, version: str) -> dict[str, Any]:
    ops = [op for op in operations if op.path.startswith(API_PREFIX)]
    refs = _schemas(ops)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        path = _PATH_PARAM.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, refs["ref"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "FluxStudio API",
            "version": version,
            "description": "Uploads to adaptive HLS, live progress, for people and agents. "
            "Errors are RFC 9457 problem details (application/problem+json).",
        },
        "paths": paths,
        "components": {
            "schemas": refs["defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token"}
            },
        },
        "security": [{"bearer": []}],
    }


def _schemas(ops: list[Operation]) -> dict[str, Any]:
    """Every model's JSON Schema under one $defs; `ref[(model, mode)]` is how an operation points at it."""
    wanted: list[tuple[type[BaseModel], str]] = [(Problem, "serialization")]
    for op in ops:
        if op.response is not None:
            wanted.append((op.response, "serialization"))
        if op.body is not None:
            wanted.append((op.body, "validation"))
    unique = list(dict.fromkeys(wanted))
    ref_map, top = models_json_schema(unique, ref_template=REF)  # type: ignore[arg-type]
    return {"ref": ref_map, "defs": top.get("$defs", {})}


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": op.operation_id or op.endpoint.__name__,
        "summary": op.summary,
        "tags": [op.tag] if op.tag else [],
        "parameters": _parameters(op),
        "responses": _responses(op, refs),
    }
    if not op.auth:
        spec["security"] = []
    if op.body is not None:
        content = {"application/json": {"schema": refs[(op.body, "validation")]}}
        spec["requestBody"] = {"required": op.body_required, "content": content}
    elif op.body_content is not None:
        spec["requestBody"] = {"required": True, "content": op.body_content}
    return spec


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    for p in op.params:
        params.append(
            {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
             "description": p.description, "schema": p.schema}
        )
    return params


def _responses(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": refs[(op.response, "serialization")]}}
    elif op.response_media is not None:
        success["content"] = {op.response_media: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): success}
    problem_schema = refs[(Problem, "serialization")]
    errors = set(op.errors)
    if op.auth:
        errors.add(401)
    if op.body is not None:
        errors.update((400, 422))
    for status in sorted(errors):
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": problem_schema}},
        }
    return responses
