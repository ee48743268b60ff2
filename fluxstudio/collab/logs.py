"""The collab surface's logger: every line says `component=collab`."""

from fluxstudio.log import get_logger

log = get_logger("collab")
