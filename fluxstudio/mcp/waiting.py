"""`wait_for_job`: follow a job for a bounded time, forwarding its progress as MCP progress notifications.

The events are `studio.progress.events`, the very stream the SSE endpoint frames (Redis pub/sub, with
PostgreSQL for the state at the start and after any gap), so MCP and SSE cannot disagree. The wait is
bounded (45 s at most) because many MCP clients give up on a request after 60 s: an agent that wants
longer calls again, and gets the job as it stands each time.

MCP requires progress values to increase. Within an attempt the stream never goes backwards, but a
retried job starts again from its own progress; such values are held back until they pass the highest
value already sent, so a notification never repeats or lowers a value.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from fluxstudio.errors import Unavailable
from fluxstudio.mcp.calls import StudioCall
from fluxstudio.studio import jobs, progress
from fluxstudio.studio.models import Job

MAX_WAIT_S = 45.0

#: report(progress in [0, 1], message): sends one `notifications/progress` with total 1.
Report = Callable[[float, str], Awaitable[None]]


class _Increasing:
    """Sends only values above the last one sent."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._last = -1.0

    async def send(self, value: float, message: str) -> None:
        value = min(1.0, max(0.0, value))
        if value > self._last:
            self._last = value
            await self._report(value, message)


async def wait_for_job(call: StudioCall, job_id: str, timeout_s: float, report: Report) -> Job:
    """The job once it has finished, or as it stands after `timeout_s` seconds (at most MAX_WAIT_S)."""
    hub = call.platform.hub
    if hub is None:
        raise Unavailable("live progress is unavailable; poll get_job instead")
    progress_out = _Increasing(report)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(min(timeout_s, MAX_WAIT_S)):
            stream = progress.events(call.pool, hub, call.user, job_id)
            async with contextlib.aclosing(stream):
                async for name, data in stream:
                    if name == "progress":
                        await progress_out.send(float(data.get("progress") or 0.0), _describe(data))
                        continue
                    if name == "playable":  # the asset plays already; get_playback_url has the URL
                        continue
                    job = Job.model_validate(data)
                    done = 1.0 if job.status == "succeeded" else job.progress
                    await progress_out.send(done, job.status)
                    if name == "end":
                        return job
    # Timed out: read the row, so the answer is fresh even if the last event was a while ago.
    return await jobs.get_job(call.pool, call.user, job_id)


def _describe(event: dict[str, Any]) -> str:
    """`running 42%, at 1.9x, about 3 s left`: what a person watching the agent wants to read."""
    parts = [f"{event.get('status', 'running')} {round(100 * float(event.get('progress') or 0))}%"]
    if event.get("speed"):
        parts.append(f"at {float(event['speed']):.1f}x")
    if event.get("eta_s") is not None:
        parts.append(f"about {round(float(event['eta_s']))} s left")
    return ", ".join(parts)
