"""Logging: structlog configured once per process by its entrypoint, every line labelled with `component`.

The standard library's loggers (uvicorn, arq, asyncpg, botocore) go through the same processor chain, so a
JSON line from uvicorn looks like one of ours and carries the same `component`. Secrets are redacted in
one processor at the end of the chain: keys that name a secret, credentials inside URLs, token-like
query parameters and anything shaped like one of our tokens, whoever logged them.

Redaction is the last word on every output path. Tracebacks are rendered to text *before* it (plain
tracebacks, never local variables: a frame's locals hold the request, its `Authorization` header and
capability URLs), so the rendered text is scrubbed like any other field, in both formats and for the
standard library's records (uvicorn logs "Exception in ASGI application" with a traceback too).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authorization|api_?key|credential|cookie", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@", re.I)
_QUERY_SECRETS = re.compile(
    r"(?P<key>[?&](?:token|access_token|signature|x-amz-signature|x-amz-credential|sig|key)=)[^&\s\"']+", re.I
)
#: Our own credentials by their shape (API tokens, upload capabilities, room tokens) and bearer values,
#: wherever they appear in text: an exception message, a request line, a URL path.
_TOKEN_SHAPES = re.compile(r"\b(?P<prefix>fs_|upl_|rt_)[A-Za-z0-9_.=-]{16,}")
_BEARER = re.compile(r"(?P<scheme>\bbearer\s+)[^\s'\",;]+", re.I)
REDACTED = "[redacted]"

#: Libraries whose records we route through our chain, with the level below which they stay quiet.
_LIBRARY_LEVELS = {
    "uvicorn": logging.INFO,
    "uvicorn.access": logging.WARNING,
    "arq": logging.INFO,
    "asyncpg": logging.WARNING,
    "botocore": logging.WARNING,
    "aiobotocore": logging.WARNING,
    "alembic": logging.INFO,
    "alembic.runtime.plugins": logging.WARNING,
    "httpx": logging.WARNING,
    "mcp": logging.INFO,
    "mcp.server.streamable_http": logging.WARNING,  # stateless: "Terminating session: None" per request
    "pycrdt": logging.WARNING,
}


def redact_text(text: str) -> str:
    """Mask a password inside a URL and token-like query parameters; leave everything else readable."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _QUERY_SECRETS.sub(lambda m: f"{m['key']}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m['scheme']}{REDACTED}", text)
    return _TOKEN_SHAPES.sub(lambda m: f"{m['prefix']}{REDACTED}", text)


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key) and value not in (None, "", False, True):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(key, v) for v in value)
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the last line of defence against a secret in a log line."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _redact_value(key, value)
    return event_dict


def _drop_color_message(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """uvicorn passes a copy of each message with terminal escape codes as `color_message`; drop it."""
    event_dict.pop("color_message", None)
    return event_dict


class _CurrentStderr:
    """`sys.stderr` looked up at each write: while a rich progress bar is live it is rich's proxy, which
    prints log lines above the bar instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _default_component(component: str) -> structlog.types.Processor:
    def add_component(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict.setdefault("component", component)
        return event_dict

    return add_component


def configure_logging(
    component: str, *, fmt: str = "console", level: str = "info", stream: TextIO | None = None
) -> None:
    """Set up structlog and the stdlib root logger for this process. Call once, from an entrypoint."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        _default_component(component),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        # plain_traceback: never rich's locals. It also only ever sees text here (format_exc_info ran).
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared[:1], structlog.stdlib.add_logger_name, *shared[1:]],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # traceback -> text, so that redaction sees it
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or _CurrentStderr())  # type: ignore[arg-type]
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, floor in _LIBRARY_LEVELS.items():
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.propagate = True
        library.setLevel(max(floor, root.level))


def get_logger(component: str | None = None, **context: Any) -> structlog.stdlib.BoundLogger:
    """A logger; pass `component` where a surface in a shared process speaks (collab, mcp)."""
    if component is not None:
        context["component"] = component
    # A lazy proxy: modules take their logger at import, before the entrypoint configures logging.
    return structlog.stdlib.get_logger("fluxstudio", **context)
