"""Webhooks (API.md §10): a user's endpoints, the outbox of events for them, and the delivery log.

The outbox is `webhook_deliveries`: one row per event and endpoint, written by `record_event` on the
caller's connection, inside the transaction that makes the change it reports, so an event exists if and
only if its change was committed, and no process or Redis restart can lose it. The same transaction
NOTIFYs `webhook_wake` (delivered by PostgreSQL at commit), so workers send within milliseconds; their
poll is only the backstop. Only endpoints of the user who owns the object get a row: a user's endpoints
never see another user's events.

Events and where they are recorded (the hook for a new one is one call of `record_event`):
    job.succeeded, asset.ready     studio/leases.py  succeed
    job.failed, asset.failed       studio/leases.py  fail, reconcile; studio/imports.py  fail_import
    job.cancelled                  studio/jobs.py    cancel_job
    asset.deleted                  studio/assets.py  delete_asset
    comment.created                studio/comments.py `add_comment`, in the comment's transaction
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from fluxstudio.errors import Invalid, NotFound
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.outbound import OutboundPolicy
from fluxstudio.studio.projects import Db
from fluxstudio.studio.users import User

log = get_logger()

EVENT_TYPES = (
    "asset.ready", "asset.failed", "asset.deleted", "job.succeeded", "job.failed", "job.cancelled",
    "comment.created",
)  # fmt: skip
TEST_EVENT = "webhook.test"
WAKE_CHANNEL = "webhook_wake"
SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS = 20
URL_MAX = 2000
#: A claimed delivery is someone's for this long; a worker that dies mid-send is retried after it.
CLAIM_S = 60.0


class WebhookEndpoint(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime
    #: Shown once, in the answer to its creation; null everywhere else.
    secret: str | None = None


class WebhookAttempt(BaseModel):
    """One attempt at delivering one event: the answer's status code, or why there was none."""

    event_id: str
    type: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """A claimed delivery: what to send where, and which attempt this is (1 for the first)."""

    id: str
    endpoint_id: str
    url: str
    secret: str
    event_id: str
    event_type: str
    payload: str
    attempt: int


# -- endpoints --------------------------------------------------------------------------------------


def _events(events: Sequence[str] | None) -> list[str] | None:
    if events is None:
        return None
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise Invalid(f"unknown event types: {', '.join(u[:40] for u in unknown[:5])}")
    if not events:
        raise Invalid("events must name at least one event type, or be left out for all of them")
    return sorted(set(events))


async def create_endpoint(
    pool: Db, user: User, url: str, events: Sequence[str] | None, policy: OutboundPolicy
) -> WebhookEndpoint:
    """A new endpoint for the user's events; its secret is in the answer and nowhere else, ever."""
    if not isinstance(url, str) or len(url) > URL_MAX:
        raise Invalid(f"a webhook URL is at most {URL_MAX} characters")
    policy.check_url(url)
    chosen = _events(events)
    count = await pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE user_id = $1", user.id)
    if count >= MAX_ENDPOINTS:
        raise Invalid(f"a user has at most {MAX_ENDPOINTS} webhook endpoints")
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()
    row = await pool.fetchrow(
        "INSERT INTO webhook_endpoints (id, user_id, url, events, secret) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING id, url, events, created_at",
        new_id("whk"), user.id, url, chosen, secret,
    )  # fmt: skip
    log.info("webhook_endpoint_created", endpoint_id=row["id"])
    return _endpoint(row).model_copy(update={"secret": secret})


async def list_endpoints(pool: Db, user: User) -> list[WebhookEndpoint]:
    rows = await pool.fetch(
        "SELECT id, url, events, created_at FROM webhook_endpoints WHERE user_id = $1"
        " ORDER BY created_at, id",
        user.id,
    )
    return [_endpoint(row) for row in rows]


async def delete_endpoint(pool: Db, user: User, endpoint_id: str) -> None:
    """Delete it with its pending deliveries: nothing more is sent to it, not even a retry."""
    done = await pool.fetchval(
        "DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2 RETURNING true", endpoint_id, user.id
    )
    if not done:
        raise NotFound(f"no webhook endpoint has the id {endpoint_id[:64]!r}")
    log.info("webhook_endpoint_deleted", endpoint_id=endpoint_id)


async def list_attempts(pool: Db, user: User, endpoint_id: str, *, limit: int = 100) -> list[WebhookAttempt]:
    """The endpoint's delivery log, newest first."""
    await _owned(pool, user, endpoint_id)
    rows = await pool.fetch(
        "SELECT event_id, event_type AS type, attempt, status_code, error, duration_ms, created_at"
        " FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        endpoint_id,
        limit,
    )
    return [WebhookAttempt(**dict(row)) for row in rows]


async def send_test(pool: asyncpg.Pool, user: User, endpoint_id: str) -> str:
    """Queue a `webhook.test` event for this endpoint alone; returns its event id."""
    await _owned(pool, user, endpoint_id)
    event_id, payload = _payload(TEST_EVENT, {"endpoint_id": endpoint_id})
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload)"
            " VALUES ($1, $2, $3, $4, $5)",
            new_id("whd"), endpoint_id, event_id, TEST_EVENT, payload,
        )  # fmt: skip
        await connection.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
    return event_id


# -- the outbox -------------------------------------------------------------------------------------


def _payload(event_type: str, data: dict[str, Any]) -> tuple[str, str]:
    """The event's id and body, fixed now: every retry sends the same bytes (signed afresh)."""
    event_id = new_id("msg")
    body = {"type": event_type, "timestamp": datetime.now(UTC).isoformat(), "data": data}
    return event_id, json.dumps(body, separators=(",", ":"), default=str)


async def record_event(
    connection: asyncpg.Connection, user_id: str, event_type: str, data: dict[str, Any]
) -> int:
    """Write the event for each of the user's endpoints that wants it; call inside the change's
    transaction. Returns how many deliveries it made (0: nobody listens, nothing is stored)."""
    event_id, payload = _payload(event_type, data)
    count = await connection.fetchval(
        "WITH made AS (INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, payload)"
        " SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), e.id, $2, $3, $4"
        " FROM webhook_endpoints e WHERE e.user_id = $1 AND (e.events IS NULL OR $3 = ANY(e.events))"
        " RETURNING 1) SELECT count(*) FROM made",
        user_id, event_id, event_type, payload,
    )  # fmt: skip
    if count:
        await connection.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
    return count


async def record_asset_event(
    connection: asyncpg.Connection, asset_id: str, event_type: str, data: dict[str, Any]
) -> int:
    """`record_event` for the owner of `asset_id` (workers know the asset, not its user)."""
    user_id = await connection.fetchval(
        "SELECT p.user_id FROM assets a JOIN projects p ON p.id = a.project_id WHERE a.id = $1", asset_id
    )
    return 0 if user_id is None else await record_event(connection, user_id, event_type, data)


# -- delivery (the workers' side) -------------------------------------------------------------------


async def claim_due(pool: asyncpg.Pool, *, limit: int = 20) -> list[Delivery]:
    """Take up to `limit` due deliveries for CLAIM_S; another worker skips them meanwhile."""
    rows = await pool.fetch(
        "WITH due AS (SELECT d.id FROM webhook_deliveries d WHERE d.status = 'pending'"
        "   AND d.next_attempt_at <= now() ORDER BY d.next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE webhook_deliveries d SET attempts = d.attempts + 1,"
        "   next_attempt_at = now() + make_interval(secs => $2)"
        " FROM due, webhook_endpoints e WHERE d.id = due.id AND e.id = d.endpoint_id"
        " RETURNING d.id, d.endpoint_id, e.url, e.secret, d.event_id, d.event_type, d.payload,"
        "   d.attempts AS attempt",
        limit, CLAIM_S,
    )  # fmt: skip
    return [Delivery(**dict(row)) for row in rows]


async def record_attempt(
    pool: asyncpg.Pool,
    delivery: Delivery,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    retry_in_s: float | None,
) -> None:
    """Log the attempt; then the delivery is done (2xx), due again in `retry_in_s`, or failed for good."""
    ok = status_code is not None and 200 <= status_code < 300
    status = "succeeded" if ok else ("pending" if retry_in_s is not None else "failed")
    async with pool.acquire() as connection, connection.transaction():
        updated = await connection.fetchval(
            "UPDATE webhook_deliveries SET status = $2,"
            " next_attempt_at = CASE WHEN $3::float8 IS NULL THEN next_attempt_at"
            "   ELSE now() + make_interval(secs => $3::float8) END"
            " WHERE id = $1 AND attempts = $4 RETURNING true",
            delivery.id, status, None if ok else retry_in_s, delivery.attempt,
        )  # fmt: skip
        if not updated:
            return  # the endpoint was deleted meanwhile (its log went with it), or another claim won
        await connection.execute(
            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, event_type, attempt,"
            " status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            delivery.id, delivery.endpoint_id, delivery.event_id, delivery.event_type, delivery.attempt,
            status_code, error, duration_ms,
        )  # fmt: skip


async def next_due_in_s(pool: asyncpg.Pool) -> float | None:
    """Seconds until the next pending delivery is due (0 if one is), None if none is pending."""
    return await pool.fetchval(
        "SELECT greatest(0, extract(epoch FROM min(next_attempt_at) - now()))::float8"
        " FROM webhook_deliveries WHERE status = 'pending'"
    )


# -- helpers ----------------------------------------------------------------------------------------


async def _owned(pool: Db, user: User, endpoint_id: str) -> None:
    found = await pool.fetchval(
        "SELECT true FROM webhook_endpoints WHERE id = $1 AND user_id = $2", endpoint_id[:64], user.id
    )
    if not found:
        raise NotFound(f"no webhook endpoint has the id {endpoint_id[:64]!r}")


def _endpoint(row: asyncpg.Record) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"], url=row["url"], events=list(row["events"] or EVENT_TYPES), created_at=row["created_at"]
    )
