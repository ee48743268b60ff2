"""`fluxstudio serve`: the API process under uvicorn, honouring PORT, with deliberate server limits."""

from __future__ import annotations

from typing import Any

import uvicorn

from fluxstudio.config import Settings

#: uvicorn's limits, set on purpose rather than inherited (also used by `up` and the tests' servers).
#: uvicorn has no timeout for a request's headers or body: slow clients are bounded by the connection
#: cap here, and per client by the proxy in front (see the README's Security section).
SERVER_LIMITS: dict[str, Any] = {
    # h11, not httptools: httptools buffers request headers without any limit (10 MB were accepted here),
    # h11 refuses more than h11_max_incomplete_event_size of unfinished headers. Upload throughput was the
    # same within this machine's noise (212-637 MB/s vs 328-358 MB/s, 300 MB, loopback).
    "http": "h11",
    # An idle keep-alive connection is closed after this many seconds.
    "timeout_keep_alive": 5,
    # Past this many connections and tasks at once the server answers 503 at once instead of queueing.
    "limit_concurrency": 1000,
    # Unfinished request headers larger than this (bytes) are refused (400): memory per slow client is small.
    "h11_max_incomplete_event_size": 16 * 1024,
    # A WebSocket message larger than this closes the socket (1009); collab's own limit is 8 MiB.
    "ws_max_size": 9 * 1024 * 1024,
    "ws_max_queue": 32,
    # A WebSocket peer that stops answering pings is dropped within interval + timeout seconds.
    "ws_ping_interval": 20.0,
    "ws_ping_timeout": 20.0,
}


def serve(settings: Settings, *, host: str, port: int) -> int:
    from fluxstudio.app import create_app

    # log_config=None keeps uvicorn's loggers on our structlog chain (configured by the CLI).
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips="*",
        timeout_graceful_shutdown=10,
        **SERVER_LIMITS,
    )
    return 0
