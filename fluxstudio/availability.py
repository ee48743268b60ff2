"""Which dependencies a long-running process is waiting for, logged once per outage, not once per attempt.

A worker talks to Redis from several places (arq's poll, the pub/sub hub, the heartbeat) and to
PostgreSQL from several more (claims, leases, the reconciler). Each of them reports what it saw here:
`lost("redis", error)` the first time logs `redis_unavailable` and starts the outage's clock,
`back("redis")` logs `redis_restored` once and runs the callbacks that resume work (a poll, a reconcile).
The heartbeat writes `waiting()` into the worker's beat, so `worker --check` and `doctor` can say
"worker up, waiting for Redis since …" instead of a crash loop saying nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fluxstudio.log import get_logger

#: Names of the dependencies as shown to people.
LABELS = {"redis": "Redis", "postgres": "PostgreSQL"}
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0

log = get_logger()


@dataclass(frozen=True)
class Outage:
    dependency: str
    since: float  # epoch seconds
    error: str


class Availability:
    """The state of a process's dependencies; every method is cheap and safe to call on every attempt."""

    def __init__(self) -> None:
        self._down: dict[str, Outage] = {}
        self._on_back: list[Callable[[str], None]] = []
        self._on_change: list[Callable[[str], None]] = []

    def on_back(self, callback: Callable[[str], None]) -> None:
        """Call `callback(dependency)` whenever a dependency comes back (resume polling, reconcile)."""
        self._on_back.append(callback)

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call `callback(dependency)` when a dependency is lost or back (the heartbeat beats at once)."""
        self._on_change.append(callback)

    def lost(self, dependency: str, error: BaseException | str) -> None:
        if dependency in self._down:
            return
        reason = error if isinstance(error, str) else (getattr(error, "message", None) or str(error))
        reason = reason or type(error).__name__
        self._down[dependency] = Outage(dependency, time.time(), reason)
        log.warning(f"{dependency}_unavailable", error=reason, waiting="retrying with back-off")
        for callback in self._on_change:
            callback(dependency)

    def back(self, dependency: str) -> None:
        outage = self._down.pop(dependency, None)
        if outage is None:
            return
        log.info(f"{dependency}_restored", after_s=round(time.time() - outage.since, 1))
        for callback in (*self._on_change, *self._on_back):
            callback(dependency)

    def is_down(self, dependency: str) -> bool:
        return dependency in self._down

    def waiting(self) -> Outage | None:
        """The oldest outage in progress, or None when every dependency answers."""
        return min(self._down.values(), key=lambda o: o.since, default=None)

    async def retry_until_up(self, dependency: str, probe: Callable[[], Awaitable[object]]) -> None:
        """While `dependency` is down, run `probe` with a bounded back-off until it succeeds, then mark it
        back. Returns at once if it is up. Meant to run in a background task of its own."""
        delay = RETRY_FIRST_S
        while self.is_down(dependency):
            await asyncio.sleep(delay)
            try:
                await probe()
            except asyncio.CancelledError:
                raise
            except Exception:  # any failure means: still down, try again later
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.back(dependency)
