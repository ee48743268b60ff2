"""Run one ffmpeg/ffprobe child so that nothing outlives it.

The child gets its own session (process group), no stdin, a minimal environment and rlimits. Whatever
ends the wait (exit, timeout, watchdog, cancellation of the awaiting task) the whole group is gone when
`run` returns or raises: SIGTERM, then SIGKILL after a short grace.

A child that reports on stdout (ffmpeg's `-progress`) is also watched for computing in silence: past
`Limits.silent_cpu_s` of CPU time without a line it is stopped as `Runaway`, which is bad media (no retry),
while a child that is silent because it gets no CPU (a starved or stopped process) is left to the
caller's wall-clock stall rule, which may be the machine's fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fluxstudio.errors import UnreadableMedia
from fluxstudio.media.guards import Limits, minimal_env, rlimits_preexec

_TAIL_BYTES = 4096
_KILL_GRACE_S = 2.0
_WATCH_PERIOD_S = 0.25
#: CPU seconds in silence that make a stall the input's fault: ffmpeg reports twice a second while it
#: works, so between two lines it burns at most about a second even on two busy cores.
_STALL_CPU_S = 2.0

LineHandler = Callable[[str], Awaitable[None] | None]
# Polled while the child runs: returns why it must be stopped, or None. May also emit heartbeats.
Watchdog = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Finished:
    exit_code: int
    stdout: str  # empty when lines went to on_stdout_line
    stderr_tail: str


class Runaway(UnreadableMedia):
    """The child burnt `Limits.silent_cpu_s` of CPU without reporting: the input makes it run away."""


class Stopped(Exception):
    """The child was stopped by a timeout or the watchdog; carries the reason and stderr tail."""

    def __init__(self, reason: str, stderr_tail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stderr_tail = stderr_tail


async def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    limits: Limits,
    timeout_s: float | None,
    on_stdout_line: LineHandler | None = None,
    watchdog: Watchdog | None = None,
    cpu_seconds: int | None = None,
    on_start: Callable[[int], None] | None = None,
    tail_bytes: int = _TAIL_BYTES,
) -> Finished:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=minimal_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        preexec_fn=rlimits_preexec(limits, cpu_seconds),
    )
    if on_start is not None:
        on_start(proc.pid)
    tail = bytearray()
    stdout_parts: list[str] = []
    silence = _Silence(proc.pid, limits.silent_cpu_s) if on_stdout_line is not None else None
    try:
        async with asyncio.timeout(timeout_s):
            readers = asyncio.gather(
                _read_lines(proc.stdout, on_stdout_line, stdout_parts, silence),
                _read_tail(proc.stderr, tail, tail_bytes),
            )
            if watchdog is None and silence is None:
                await readers
            else:
                stderr = lambda: _decode(tail)  # noqa: E731
                await _watch(readers, _watching(silence, watchdog, stderr), stderr)
            exit_code = await proc.wait()
    except TimeoutError:
        raise Stopped(f"ffmpeg ran longer than {timeout_s:g} s", _decode(tail)) from None
    finally:
        if proc.returncode is None:
            await _kill_group(proc)
    return Finished(exit_code, "".join(stdout_parts), _decode(tail))


async def _watch(readers: asyncio.Future, watchdog: Watchdog, tail: Callable[[], str]) -> None:
    try:
        while True:
            done, _ = await asyncio.wait({readers}, timeout=_WATCH_PERIOD_S)
            if done:
                readers.result()
                return
            reason = await watchdog()
            if reason is not None:
                raise Stopped(reason, tail())
    finally:
        if not readers.done():
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await readers


class _Silence:
    """CPU time the child used since its last stdout line (Linux /proc; elsewhere it is never tripped)."""

    def __init__(self, pid: int, limit_s: float) -> None:
        self._stat = Path(f"/proc/{pid}/stat")
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.limit_s = limit_s
        self.mark = self._cpu_s()

    def _cpu_s(self) -> float:
        try:
            fields = self._stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime, all threads

    def heard(self) -> None:
        self.mark = self._cpu_s()

    def burnt_s(self) -> float:
        return self._cpu_s() - self.mark


def _watching(silence: _Silence | None, watchdog: Watchdog | None, tail: Callable[[], str]) -> Watchdog:
    async def watch() -> str | None:
        if silence is not None and silence.burnt_s() > silence.limit_s:
            raise _runaway(f"computed for {silence.limit_s:g} CPU seconds", tail())
        reason = await watchdog() if watchdog is not None else None
        if reason is not None and silence is not None and silence.burnt_s() >= _STALL_CPU_S:
            # The caller's wall-clock stall rule fired first (a loaded machine gives ffmpeg little CPU),
            # but ffmpeg was working all along, only not reporting: the input, not the machine.
            raise _runaway(f"computed for {silence.burnt_s():.1f} CPU seconds ({reason})", tail())
        return reason

    return watch


def _runaway(what: str, stderr_tail: str) -> Runaway:
    return Runaway(
        f"ffmpeg {what} without reporting progress: the source makes it run away "
        "(e.g. frames hours apart turned into filler frames)",
        stderr_tail=stderr_tail,
    )


async def _read_lines(
    stream: asyncio.StreamReader, handler: LineHandler | None, parts: list[str], silence: _Silence | None
) -> None:
    while line := await stream.readline():
        if silence is not None:
            silence.heard()
        text = line.decode("utf-8", "replace").strip()
        if handler is None:
            parts.append(text + "\n")
            continue
        result = handler(text)
        if inspect.isawaitable(result):
            await result


async def _read_tail(stream: asyncio.StreamReader, tail: bytearray, keep: int) -> None:
    # Read chunks, not lines: a hostile input can make ffmpeg log lines longer than any buffer.
    while chunk := await stream.read(65536):
        tail += chunk
        del tail[:-keep]


def _decode(tail: bytearray) -> str:
    return bytes(tail).decode("utf-8", "replace")


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    _signal_group(proc.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), _KILL_GRACE_S)
    except TimeoutError:
        pass
    finally:
        # Whether the leader left in time or we are being cancelled again, nothing of the group stays.
        _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
