"""Who calls `/mcp`: bearer tokens checked through the SDK's token-verifier seam.

`StudioTokenVerifier` is handed to `MCPServer(token_verifier=...)`, so the SDK's own middleware answers
401 without a valid token (before any MCP message is read) and keeps the verified token on the request,
where `caller(ctx)` finds it: every tool knows its user and passes it to `studio/`.

Two kinds of token are accepted:
- an API token (`fluxstudio tokens create`): the caller is the token's user, exactly as over REST;
- `MCP_AUTH_TOKEN`, accepted on `/mcp` only: the caller is the default local user
  (`local@fluxstudio.invalid`), the operator's own identity, which `fluxstudio up`'s development token
  and `tokens create` without `--user` also act as. So an agent configured with the deployment's MCP
  token sees the projects the operator uploads from the CLI, and the token grants nothing that an
  operator's `tokens create` could not. It is not a super-user: it reaches no one else's objects.

The plaintext token is never kept: the `AccessToken` carries its SHA-256 only.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

import asyncpg
import structlog
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context

from fluxstudio.config import Secret
from fluxstudio.errors import NotFound
from fluxstudio.studio.tokens import authenticate, hash_token
from fluxstudio.studio.users import DEFAULT_EMAIL, User, ensure_user

#: `client_id` of the two kinds of caller, as the SDK records them (e.g. to bind a session to it).
API_TOKEN_CLIENT = "fluxstudio-api-token"
MCP_TOKEN_CLIENT = "fluxstudio-mcp-token"
SERVICE_EMAIL = DEFAULT_EMAIL


class StudioTokenVerifier:
    """`TokenVerifier` for the SDK: an `AccessToken` naming the user, or None (the SDK answers 401).

    `pool` is asked for at each verification: the verifier is built with the app, the pool only when the
    app starts.
    """

    def __init__(self, pool: Callable[[], asyncpg.Pool], mcp_auth_token: Secret | None) -> None:
        self._pool = pool
        self._mcp_token = mcp_auth_token.get().encode() if mcp_auth_token is not None else None
        self._service_user: User | None = None

    async def verify_token(self, token: str) -> AccessToken | None:
        token = token.strip()
        if self._mcp_token is not None and hmac.compare_digest(token.encode(), self._mcp_token):
            user, client_id = await self._service(), MCP_TOKEN_CLIENT
        else:
            try:
                user, client_id = await authenticate(self._pool(), token), API_TOKEN_CLIENT
            except NotFound:
                return None
        # Like REST's require_user: every line logged for this request names the caller.
        structlog.contextvars.bind_contextvars(user_id=user.id)
        return AccessToken(
            token=hash_token(token),
            client_id=client_id,
            scopes=[],
            subject=user.id,
            claims={"email": user.email},
        )

    async def _service(self) -> User:
        if self._service_user is None:  # one lookup per process: the user never changes once made
            self._service_user = await ensure_user(self._pool(), SERVICE_EMAIL)
        return self._service_user


def caller(ctx: Context) -> User:
    """The user of the current MCP request, as verified by `StudioTokenVerifier`."""
    request = ctx.request_context.request
    user = request.scope.get("user") if request is not None else None
    if not isinstance(user, AuthenticatedUser) or user.access_token.subject is None:
        # Unreachable behind RequireAuthMiddleware; refusing is the only safe answer if it ever is not.
        raise PermissionError("this MCP request carries no verified caller")
    token = user.access_token
    return User(id=token.subject, email=(token.claims or {}).get("email", ""))


def credential(ctx: Context) -> tuple[str, str]:
    """(client_id, SHA-256 of the token) of the current MCP request: which kind of token, and which one."""
    request = ctx.request_context.request
    user = request.scope.get("user") if request is not None else None
    if not isinstance(user, AuthenticatedUser):
        raise PermissionError("this MCP request carries no verified caller")
    return user.access_token.client_id, user.access_token.token
