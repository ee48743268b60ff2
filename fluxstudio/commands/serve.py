"""`fluxstudio serve`: the API process under uvicorn, honouring PORT."""

from __future__ import annotations

import uvicorn

from fluxstudio.config import Settings


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
    )
    return 0
