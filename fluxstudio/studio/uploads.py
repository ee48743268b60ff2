"""Receiving uploads: one-use upload capabilities, and accepting a file as an asset (with a transcode).

A capability lets a client that cannot send our bearer header (`curl -T file URL` from an agent) upload
one file into one project. Its token, `upl_` and 43 URL-safe characters (256 random bits), is the whole
credential, so only its SHA-256 is stored, as with API tokens. Redeeming is one UPDATE that checks
"unused and unexpired" and marks it used in the same statement: of two concurrent redeems, PostgreSQL's
row lock lets exactly one see `used_at IS NULL`.

A used, expired and unknown token all raise `Gone` with one message. To the holder a capability URL is an
opaque string: one that never existed and one that was used look the same, and answering 404 for one and
410 for the other would tell a guesser which tokens once were real. One-use means one attempt: a redeemed
URL whose upload is then refused (empty, unreadable) stays spent; the caller asks for a new one.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import asyncpg

from fluxstudio.errors import Gone, Invalid, NotFound
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.media import Tools
from fluxstudio.queue import Queue
from fluxstudio.storage import Storage
from fluxstudio.studio import jobs
from fluxstudio.studio.assets import clean_filename, ingest
from fluxstudio.studio.models import Asset, Job, JobOptions
from fluxstudio.studio.projects import Db
from fluxstudio.studio.tokens import hash_token
from fluxstudio.studio.users import User

log = get_logger()

TOKEN_PREFIX = "upl_"
DEFAULT_TTL_S = 3600
MAX_TTL_S = 7 * 24 * 3600
#: Longer than any token we issue; anything longer is refused before it reaches the database.
_TOKEN_MAX = 100


class UploadGrant(NamedTuple):
    """A new capability: its plaintext token (shown once; the API turns it into a URL) and its id."""

    token: str
    expires_at: datetime
    id: str


class RedeemedUpload(NamedTuple):
    """What a redeemed capability allows: one upload by `user` into `project_id`."""

    user: User
    project_id: str
    filename: str
    transcode: bool


async def create_upload(
    pool: Db,
    user: User,
    project_id: str,
    filename: str,
    *,
    transcode: bool = False,
    ttl_s: int = DEFAULT_TTL_S,
) -> UploadGrant:
    """A one-use capability to upload `filename` into the user's project, valid for `ttl_s` seconds."""
    name = clean_filename(filename)
    if not isinstance(ttl_s, int) or not 1 <= ttl_s <= MAX_TTL_S:
        raise Invalid(f"an upload URL lives from 1 to {MAX_TTL_S} seconds")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = await pool.fetchrow(
        """
        INSERT INTO upload_capabilities (id, token_hash, user_id, project_id, filename, transcode, expires_at)
        SELECT $1, $2, p.user_id, p.id, $4, $5, now() + make_interval(secs => $6) FROM projects p
        WHERE p.id = $3 AND p.user_id = $7
        RETURNING id, expires_at
        """,
        new_id("upl"),
        hash_token(plaintext),
        project_id,
        name,
        bool(transcode),
        float(ttl_s),
        user.id,
    )
    if row is None:
        raise NotFound(f"no project has the id {project_id[:64]!r}")
    log.info("upload_url_created", upload_id=row["id"], project_id=project_id, ttl_s=ttl_s)
    return UploadGrant(token=plaintext, expires_at=row["expires_at"], id=row["id"])


async def redeem_upload(pool: Db, token: str) -> RedeemedUpload:
    """Spend the capability, atomically; `Gone` when it is used, expired or unknown (see the docstring)."""
    gone = Gone("this upload URL has been used, has expired or does not exist")
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > _TOKEN_MAX:
        raise gone
    row = await pool.fetchrow(
        """
        UPDATE upload_capabilities c SET used_at = now()
        FROM users u
        WHERE c.token_hash = $1 AND c.used_at IS NULL AND c.expires_at > now() AND u.id = c.user_id
        RETURNING c.id, c.project_id, c.filename, c.transcode, u.id AS user_id, u.email
        """,
        hash_token(token),
    )
    if row is None:
        raise gone
    log.info("upload_url_redeemed", upload_id=row["id"], project_id=row["project_id"])
    return RedeemedUpload(
        user=User(id=row["user_id"], email=row["email"]),
        project_id=row["project_id"],
        filename=row["filename"],
        transcode=row["transcode"],
    )


async def accept_upload(
    pool: asyncpg.Pool,
    storage: Storage,
    tools: Tools,
    queue: Queue | None,
    user: User,
    project_id: str,
    upload: Path,
    *,
    filename: str,
    content_type: str | None,
    size: int,
    transcode: bool,
    max_attempts: int,
    max_bytes: int | None = None,
) -> tuple[Asset, Job | None]:
    """`ingest`, then with `transcode` an HLS job with default options: the body of `201 {asset, job}`.

    Both upload routes (bearer and capability URL) answer through this, so they cannot drift apart.
    """
    asset = await ingest(
        pool,
        storage,
        tools,
        user,
        project_id,
        upload,
        filename=filename,
        content_type=content_type,
        size=size,
        max_bytes=max_bytes,
    )
    if not transcode:
        return asset, None
    job = await jobs.create_job(pool, queue, user, asset.id, JobOptions(), max_attempts=max_attempts)
    # Creating the job may have moved the asset on (e.g. to `processing`); answer with what is stored.
    status = await pool.fetchval("SELECT status FROM assets WHERE id = $1", asset.id)
    return asset.model_copy(update={"status": status or asset.status}), job
