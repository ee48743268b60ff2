"""The collab surface's logger: every line says `component=collab`.

A lazy proxy with the component as an initial value, not `get_logger("collab")` at import: binding
before the entrypoint configures logging would freeze structlog's default processors into the logger.
"""

import structlog

log = structlog.stdlib.get_logger("fluxstudio", component="collab")
