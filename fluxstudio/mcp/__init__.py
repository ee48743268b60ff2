"""The MCP surface: agents list, upload, transcode and watch media through `/mcp` (Streamable HTTP).

    routes, lifespans = mcp_surface(settings)     # what the app factory serves and runs

Built on the official `mcp` SDK's `MCPServer`. This package is `fluxstudio.mcp`; the SDK is the top-level
`mcp`, always imported absolutely (`from mcp.server... import ...`), so the two never shadow each other.

What it must not do: hold rules of its own. Every tool calls the same `studio/` operations as the REST
API, so ownership (another user's object is "not found"), validation and idempotency live in one place;
this package only translates them into tools, resources and tool errors. Media bytes never pass through
MCP: `create_upload` hands out a one-use URL for `curl -T`.
"""

from fluxstudio.mcp.surface import MCP_PATH, McpSurface, mcp_surface

__all__ = ["MCP_PATH", "McpSurface", "mcp_surface"]
