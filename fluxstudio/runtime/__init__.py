"""What one process holds open for its whole life (pool, Redis link, storage, media tools, metrics),
below the surfaces: api/, collab/, mcp/, web/ and doctor/ all take it from here, none from each other."""

from fluxstudio.runtime.platform import Platform, RedisLink, open_platform

__all__ = ["Platform", "RedisLink", "open_platform"]
