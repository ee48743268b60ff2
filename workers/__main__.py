"""`python -m workers [--burst] [--concurrency N] [--grace S] [--lease S] ...`: one worker process.

Settings come from the environment (and `.env`) as for `fluxstudio worker`; the flags are tuning that
tests and operators may want without a new environment variable.
"""

from __future__ import annotations

import argparse
import sys

from fluxstudio.config import SettingsError, load_settings
from fluxstudio.log import configure_logging
from fluxstudio.queue import DEFAULT_QUEUE
from workers.runner import run_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description="one FluxStudio worker process")
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--concurrency", type=int, default=None, help="jobs at once (WORKER_CONCURRENCY)")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds running jobs get after SIGTERM")
    parser.add_argument("--lease", type=float, default=30.0, help="job lease in seconds")
    parser.add_argument("--reconcile-every", type=float, default=10.0, help="reconciler period in seconds")
    parser.add_argument("--retry-base", type=float, default=10.0, help="first retry back-off in seconds")
    parser.add_argument("--queue", default=DEFAULT_QUEUE, help="arq queue name")
    parser.add_argument("--health-port", type=int, default=None, help="serve /healthz and /metrics here")
    args = parser.parse_args(argv)
    try:
        settings = load_settings("worker")
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging("worker", fmt=settings.log_format, level=settings.log_level)
    run_worker(
        settings,
        burst=args.burst,
        concurrency=args.concurrency,
        grace_s=args.grace,
        lease_s=args.lease,
        reconcile_every_s=args.reconcile_every,
        retry_base_s=args.retry_base,
        queue_name=args.queue,
        health_port=args.health_port,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
