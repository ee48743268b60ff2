"""Delivering webhooks from the outbox (`studio/webhooks.py`): at least once, signed as Standard Webhooks.

A worker LISTENs on `webhook_wake` (PostgreSQL NOTIFYs it when an event's transaction commits) and also
looks every POLL_S, so an event is sent within milliseconds and no lost wake-up can strand one; Redis
plays no part. Each due delivery is claimed for a minute (SKIP LOCKED: one worker sends it), POSTed
through the outbound guard (every address checked at connect time, redirects not followed), and the
attempt is logged. Anything but a 2xx is retried after WEBHOOK_RETRY_SCHEDULE's next delay, with ±10%
jitter so a recovering receiver is not hit by every retry at once, and signed afresh with the same
`webhook-id`; after the last delay it is `failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime

import asyncpg
import httpx
from standardwebhooks.webhooks import Webhook

from fluxstudio import __version__
from fluxstudio.errors import FluxError
from fluxstudio.log import get_logger
from fluxstudio.outbound import OutboundPolicy
from fluxstudio.studio import webhooks
from fluxstudio.studio.webhooks import Delivery
from workers.context import WorkerContext

log = get_logger()

POLL_S = 5.0
SEND_TIMEOUT_S = 15.0
AT_ONCE = 8
JITTER = 0.1
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def sign(delivery: Delivery, when: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for this attempt: same id every time, a fresh timestamp and signature."""
    signature = Webhook(delivery.secret).sign(msg_id=delivery.event_id, timestamp=when, data=delivery.payload)
    return {
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": f"FluxStudio-Webhooks/{__version__}",
    }


def retry_delay(schedule: tuple[float, ...], attempt: int) -> float | None:
    """Seconds before the retry after attempt `attempt` (1-based), jittered; None once none is left."""
    if attempt > len(schedule):
        return None
    return schedule[attempt - 1] * random.uniform(1 - JITTER, 1 + JITTER)


async def deliver(
    client: httpx.AsyncClient, policy: OutboundPolicy, delivery: Delivery
) -> tuple[int | None, str | None]:
    """POST once; (status code, None) for any answer, (None, why) when there was none."""
    try:
        policy.check_url(delivery.url)
        # Streamed and closed unread: a receiver's answer body is never loaded, however large.
        request = client.build_request(
            "POST", delivery.url, content=delivery.payload.encode(), headers=sign(delivery, datetime.now(UTC))
        )
        response = await client.send(request, stream=True)
        await response.aclose()
    except FluxError as exc:
        return None, exc.message
    except httpx.HTTPError as exc:
        return None, type(exc).__name__
    return response.status_code, None


async def deliver_due(w: WorkerContext, client: httpx.AsyncClient, policy: OutboundPolicy) -> int:
    """Send every due delivery, a few at a time; returns how many were attempted."""
    attempted = 0
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(delivery: Delivery) -> None:
        async with gate:
            started = time.monotonic()
            status, error = await deliver(client, policy, delivery)
            duration_ms = int((time.monotonic() - started) * 1000)
            ok = status is not None and 200 <= status < 300
            retry_in = None if ok else retry_delay(w.settings.webhook_retry_schedule, delivery.attempt)
            await webhooks.record_attempt(
                w.pool,
                delivery,
                status_code=status,
                error=error,
                duration_ms=duration_ms,
                retry_in_s=retry_in,
            )
            log.info(
                "webhook_attempted", endpoint_id=delivery.endpoint_id, event_id=delivery.event_id,
                type=delivery.event_type, attempt=delivery.attempt, status_code=status, error=error,
                retry_in_s=retry_in,
            )  # fmt: skip

    while batch := await webhooks.claim_due(w.pool, limit=AT_ONCE * 4):
        await asyncio.gather(*(one(d) for d in batch))
        attempted += len(batch)
    return attempted


async def deliver_forever(w: WorkerContext) -> None:
    """The worker's delivery loop: wake on NOTIFY, on the next due retry, or every POLL_S."""
    assert w.settings.database_url is not None
    policy = OutboundPolicy(allowed=w.settings.import_allowed_networks, timeout_s=SEND_TIMEOUT_S)
    wake = asyncio.Event()
    listener: asyncpg.Connection | None = None
    down = False
    async with policy.client() as client:
        try:
            while True:
                try:
                    if listener is None or listener.is_closed():
                        listener = await asyncpg.connect(w.settings.database_url.get())
                        await listener.add_listener(webhooks.WAKE_CHANNEL, lambda *_: wake.set())
                    await deliver_due(w, client, policy)
                    due_in = await webhooks.next_due_in_s(w.pool)
                    if down:
                        log.info("webhook_delivery_restored")
                    down = False
                except _DB_ERRORS as exc:
                    if not down:
                        log.warning("webhook_delivery_unavailable", error=str(exc) or type(exc).__name__)
                    down = True
                    listener = None
                    due_in = POLL_S
                wait_s = POLL_S if due_in is None else min(POLL_S, due_in)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=wait_s)
                wake.clear()
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()
