"""What a worker process holds while it runs: its tuning and the resources every job shares."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from fluxstudio.availability import Availability
from fluxstudio.config import Settings
from fluxstudio.media import Tools
from fluxstudio.queue import DEFAULT_QUEUE, ProgressHub, Queue
from fluxstudio.storage import Storage


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker process runs. Defaults suit production; tests shorten the times."""

    concurrency: int = 1
    burst: bool = False  # run until the queue is empty, then exit (tests, batch)
    #: SIGTERM: stop taking jobs, let running ones finish this long, then hand them back to the queue.
    grace_s: float = 30.0
    #: A claim lasts this long unless renewed (every lease_s / 3). A SIGKILLed worker's job is back in
    #: the queue within lease_s + reconcile_every_s, whatever JOB_TIMEOUT_SECONDS is.
    lease_s: float = 30.0
    reconcile_every_s: float = 10.0
    retry_base_s: float = 10.0  # back-off after a transient failure: base * 2**(attempts-1), capped
    retry_max_s: float = 600.0
    queue_name: str = DEFAULT_QUEUE
    #: Wake-ups read per poll. Only waiting wake-ups are in the queue (a claimed job's leaves it at
    #: once), so this bounds the cost of one poll, not how many jobs the fleet runs.
    queue_read_limit: int = 200
    #: The backstop poll (deferred retries, a missed wake message); None: WORKER_POLL_DELAY_SECONDS.
    poll_delay_s: float | None = None
    #: Wake on the queue's pub/sub channel instead of waiting for the next poll (False: plain arq).
    wake_on_publish: bool = True
    handle_signals: bool = True  # False when embedded in another program's event loop (tests)
    work_dir: Path | None = None  # private temp folders for sources and outputs; None: the system's
    #: Called with (job_id, ffmpeg pid) when ffmpeg starts: for benchmarks and supervision.
    on_ffmpeg_start: Callable[[str, int], None] | None = None
    #: Serve /healthz (the heartbeat file's answer) and /metrics on this port; None: no server, 0: any.
    health_port: int | None = None
    #: Called with the job id when this worker has taken a wake-up and is about to claim the row: a
    #: seam for the tests that kill a worker at exactly that point (tests/fixtures/doomed_worker.py).
    on_wake_up: Callable[[str], None] | None = None


@dataclass
class WorkerContext:
    """Shared by the jobs of one process; stored in arq's ctx under "flux"."""

    settings: Settings
    options: WorkerOptions
    pool: asyncpg.Pool
    queue: Queue
    hub: ProgressHub
    storage: Storage
    tools: Tools
    #: Identifies this process in the job row (`worker` column) and in logs.
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    #: What this process waits for (Redis, PostgreSQL), reported by every part that talks to them.
    availability: Availability = field(default_factory=Availability)
    #: job id -> set when a cancel request for it arrives on the queue's cancel channel.
    cancels: dict[str, asyncio.Event] = field(default_factory=dict)
    #: job id -> the task running its transcode (claimed by this process, not finished yet).
    running: dict[str, asyncio.Task[str]] = field(default_factory=dict)
    #: Starts the transcode of a claimed job in the worker's own task set (set by workers/runner.py).
    launch: Callable[[Any], None] = field(default=lambda claim: None)
    background: list[asyncio.Task[None]] = field(default_factory=list)
