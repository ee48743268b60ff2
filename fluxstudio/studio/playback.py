"""Signed playback: who may fetch an asset's stream, poster and storyboard, and for how long.

A `public` asset's outputs are public by their unguessable path. A `signed` asset's are served only with
a playback token: `{asset_id}.{expires}.{signature}`, the signature an HMAC-SHA256 of the first two parts
under PLAYBACK_SIGNING_KEY. So a token is bound to one asset, cannot be extended or moved to another
asset without the key, and needs no database row: any API replica checks it. Revoking every token at
once is rotating the key; revoking one asset's is switching it back and forth (its paths do not change,
so rather delete and re-upload for a leak).

Tokens are capabilities: never log them, nor URLs that carry them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from fluxstudio.config import Secret
from fluxstudio.errors import Conflict, Forbidden, Invalid, NotFound
from fluxstudio.log import get_logger
from fluxstudio.studio import assets
from fluxstudio.studio.media_urls import MediaUrls
from fluxstudio.studio.models import Asset, PlaybackToken
from fluxstudio.studio.projects import Db
from fluxstudio.studio.users import User

TTL_DEFAULT_S = 3600
TTL_MAX_S = 86400
POLICIES = ("public", "signed")
TOKEN_PARAM = "token"
_NO_KEY = "signed playback needs PLAYBACK_SIGNING_KEY, which this deployment does not set"

log = get_logger()


def sign(key: Secret, asset_id: str, expires: int) -> str:
    return f"{asset_id}.{expires}.{_mac(key, asset_id, expires)}"


def verify(key: Secret | None, token: str | None, asset_id: str, *, now: float | None = None) -> int:
    """The token's expiry (Unix seconds) if it is valid for `asset_id` now; Forbidden otherwise."""
    if key is None or not token:
        raise Forbidden("this asset is played with a playback token (?token=)")
    parts = token.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
        raise Forbidden("the playback token is malformed")
    token_asset, expires_text, mac = parts
    expires = int(expires_text)
    if not hmac.compare_digest(mac, _mac(key, token_asset, expires)) or token_asset != asset_id:
        raise Forbidden("the playback token is not valid for this asset")
    if expires <= (time.time() if now is None else now):
        raise Forbidden("the playback token has expired")
    return expires


def _mac(key: Secret, asset_id: str, expires: int) -> str:
    digest = hmac.new(key.get().encode(), f"{asset_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# -- operations -----------------------------------------------------------------------------------


async def set_policy(
    pool: asyncpg.Pool, user: User, asset_id: str, policy: str, signing_key: Secret | None, urls: MediaUrls
) -> Asset:
    """Switch an asset between public and signed playback; Conflict when no signing key is set."""
    if policy not in POLICIES:
        raise Invalid(f"playback_policy must be one of {', '.join(POLICIES)}")
    if policy == "signed" and signing_key is None:
        raise Conflict(_NO_KEY)
    await assets.asset_row(pool, user, asset_id)
    await pool.execute(
        "UPDATE assets SET playback_policy = $2, updated_at = now() WHERE id = $1", asset_id, policy
    )
    log.info("playback_policy_changed", asset_id=asset_id, policy=policy)
    return await assets.get_asset(pool, user, asset_id, urls)


async def create_token(
    pool: asyncpg.Pool,
    user: User,
    asset_id: str,
    signing_key: Secret | None,
    urls: MediaUrls,
    *,
    ttl_s: int = TTL_DEFAULT_S,
) -> PlaybackToken:
    """URLs of the asset that carry a fresh token, valid for `ttl_s` seconds (1 to TTL_MAX_S)."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 1 <= ttl_s <= TTL_MAX_S:
        raise Invalid(f"ttl_s must be a whole number of seconds from 1 to {TTL_MAX_S}")
    if signing_key is None:
        raise Conflict(_NO_KEY)
    record = await assets.asset_row(pool, user, asset_id)
    expires = int(time.time()) + ttl_s
    token = sign(signing_key, asset_id, expires)

    def signed(key: str | None) -> str | None:
        return None if key is None else urls.with_token(key, token)

    playable = (record.playable or record.status == "ready") and record.playback_key is not None
    return PlaybackToken(
        playback_url=signed(record.playback_key) if playable else None,
        poster_url=signed(record.poster_key),
        storyboard_url=signed(record.storyboard_key),
        mp4_url=signed(record.mp4_key),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


@dataclass(frozen=True)
class MediaAccess:
    """How `/media` may serve an object: to anyone, or until `expires` with `token` carried along."""

    asset_id: str
    signed: bool
    token: str | None = None
    expires: int | None = None


async def media_access(db: Db, key: str, token: str | None, signing_key: Secret | None) -> MediaAccess:
    """Whether the object under `key` (`hls/{asset_id}/...`) may be served with this token.

    Forbidden for a signed asset's object without a valid token. An object of no asset is left to
    the storage to find (or not): public like any HLS output.
    """
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "hls":
        raise NotFound("no such media object")
    asset_id = parts[1]
    policy = await db.fetchval("SELECT playback_policy FROM assets WHERE id = $1", asset_id)
    if policy != "signed":
        return MediaAccess(asset_id, signed=False)
    expires = verify(signing_key, token, asset_id)
    return MediaAccess(asset_id, signed=True, token=token, expires=expires)
