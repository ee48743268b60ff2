"""What a worker adds for ingest (tus, imports, webhooks), kept apart so runner.py changes by a line or two:
the arq functions it registers and the background loops it starts."""

from __future__ import annotations

import asyncio
import random

from arq.worker import func

from fluxstudio.log import get_logger
from fluxstudio.studio import imports, tus
from workers.context import WorkerContext
from workers.imports import import_asset
from workers.transcode import DB_ERRORS
from workers.webhooks import deliver_forever

log = get_logger()

#: Registered beside run_job.
FUNCTIONS = [func(import_asset, name=imports.IMPORT_ASSET)]
HOUSEKEEPING_S = 30.0


def background(w: WorkerContext) -> list[asyncio.Task[None]]:
    """The loops a worker runs for ingest: webhook delivery, and expiry / import repair."""
    return [
        asyncio.create_task(deliver_forever(w), name="webhook-delivery"),
        asyncio.create_task(_housekeeping_forever(w), name="ingest-housekeeping"),
    ]


async def housekeeping_once(w: WorkerContext) -> None:
    """Sweep expired tus uploads (parts aborted, bytes deleted) and repair imports. Safe anywhere, any
    time, on any number of workers: every step is a conditional update or under the upload's lock."""
    try:
        swept = await tus.sweep_expired(w.pool, w.storage)
        woken = await imports.reconcile(w.pool, w.queue)
    except DB_ERRORS as exc:
        log.warning("ingest_housekeeping_failed", error=str(exc) or type(exc).__name__)
        return
    if swept or woken:
        log.info("ingest_reconciled", tus_expired=swept, imports_woken=woken)


async def _housekeeping_forever(w: WorkerContext) -> None:
    await housekeeping_once(w)
    while True:
        await asyncio.sleep(HOUSEKEEPING_S * random.uniform(0.8, 1.0))
        await housekeeping_once(w)
