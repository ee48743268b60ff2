"""FluxStudio: uploaded media to adaptive HLS streams, for people and AI agents working together."""

__version__ = "0.1.0"
