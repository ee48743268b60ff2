"""`fluxstudio up`: the whole platform on one machine, on embedded defaults for whatever is not configured.

Order matters: services first (embedded PostgreSQL/Redis for unset URLs), migrations, then the API in this
process and N worker processes supervised beside it (a crashed worker is restarted with back-off). Ctrl-C
or SIGTERM stops the API, sends SIGTERM to the workers (they hand running jobs back), waits, kills what is
left, and stops the embedded services: nothing is left running.

The port is taken first, so a port in use is one line before anything starts. Once the API answers, `up`
records itself in FLUXSTUDIO_HOME/up.json (`up_record.py`) so that commands beside it find its services.
Worker processes' log lines are relayed through this process's stderr, so they print above a live
progress bar instead of through it.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from rich.console import Console
from rich.markup import escape

from fluxstudio.commands.serve import SERVER_LIMITS
from fluxstudio.config import Settings, load_settings
from fluxstudio.db.migrations import upgrade
from fluxstudio.db.pool import create_pool
from fluxstudio.embedded import EmbeddedServices
from fluxstudio.errors import FluxError, NotFound
from fluxstudio.log import get_logger
from fluxstudio.media.guards import parent_death_preexec
from fluxstudio.studio import sessions, tokens
from fluxstudio.up_record import remove_record, write_record

log = get_logger()
WORKER_STOP_GRACE_S = 20.0


@dataclass
class UpOptions:
    host: str
    port: int
    workers: int
    demo: bool


def run_up(settings: Settings, options: UpOptions) -> int:
    """Start everything and block until Ctrl-C/SIGTERM. Embedded services stop in `finally`."""
    console = Console(file=sys.stderr)
    listener = _listen(options.host, options.port)
    settings.home.mkdir(parents=True, exist_ok=True)
    with listener, EmbeddedServices(settings.home) as services:
        env = dict(os.environ)
        env["FLUXSTUDIO_HOME"] = str(settings.home)
        env["DATABASE_URL"] = (
            settings.database_url.get() if settings.database_url else services.start_postgres()
        )
        env["REDIS_URL"] = settings.redis_url.get() if settings.redis_url else services.start_redis()
        env["STORAGE_URL"] = settings.storage_url
        # What `up` started itself goes in its record; a URL the user set is theirs to give other commands.
        configured = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
        embedded = {name: env[name] for name, value in configured.items() if value is None}
        api_settings = load_settings("api", env)
        console.print("migrating the database")
        upgrade(env["DATABASE_URL"])
        return asyncio.run(_platform(api_settings, env, options, console, listener, embedded))


def _listen(host: str, port: int) -> socket.socket:
    """Take the API's port before anything starts, so a port in use costs one line and nothing else."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise FluxError(
                f"port {port} on {host} is already in use (another `fluxstudio up` or `serve`?): "
                "stop it, or choose another port with --port"
            ) from None
        raise FluxError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None


async def _platform(
    settings: Settings,
    env: dict[str, str],
    options: UpOptions,
    console: Console,
    listener: socket.socket,
    embedded: dict[str, str],
) -> int:
    from fluxstudio.app import create_app

    url = f"http://{'127.0.0.1' if options.host in ('0.0.0.0', '::') else options.host}:{options.port}"
    token, signin = await _dev_token(settings, url)
    server = _Server(
        uvicorn.Config(
            create_app(settings),
            host=options.host,
            port=options.port,
            log_config=None,
            lifespan="on",
            timeout_graceful_shutdown=5,
            **SERVER_LIMITS,
        )
    )
    workers = WorkerSupervisor(options.workers, env)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.request_stop)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.05)
    if serving.done():
        await serving
        return 1
    await workers.start()
    write_record(settings.home, api_url=url, services=embedded)
    # URLs and the token are printed whole and never wrapped by rich, so they can be copied as they are.
    console.print(f"FluxStudio is up at {url} with {options.workers} worker(s)", soft_wrap=True)
    console.print(f"development token (also in {settings.home / 'dev.json'}):", soft_wrap=True)
    print(token, flush=True)
    console.print(
        f"try: curl -H 'Authorization: Bearer {token}' {url}/api/v1/projects   (Ctrl-C stops)",
        soft_wrap=True,
        highlight=False,
    )
    # soft_wrap: a link cut in two by the console's width could not be clicked or pasted.
    console.print(f"console: open {url}/signin?code={signin}  (works once, for 10 minutes)", soft_wrap=True)
    demo = asyncio.create_task(_demo(settings, url, token, console)) if options.demo else None
    try:
        await serving  # returns when uvicorn got SIGINT/SIGTERM
    finally:
        remove_record(settings.home)
        if demo is not None and not demo.done():
            demo.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await demo
        await workers.stop()
        console.print("stopped")
    return 0


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: after a graceful exit uvicorn re-raises the signal it caught,
    which would kill `up` before it has stopped its workers and embedded services."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_stop(self) -> None:
        if self.should_exit:  # a second Ctrl-C: stop without waiting for open connections
            self.force_exit = True
        self.should_exit = True


async def _dev_token(settings: Settings, url: str) -> tuple[str, str]:
    """Reuse the saved development token while it is valid, else make a new one; saved 0600 in dev.json.
    Also a one-time sign-in code for the console, for the link `up` prints (only its hash is stored)."""
    assert settings.database_url is not None
    path = settings.home / "dev.json"
    pool = await create_pool(settings.database_url.get(), min_size=1, max_size=2)
    try:
        signin = await sessions.create_signin_code(pool)
        if path.is_file():
            saved = json.loads(path.read_text())
            with contextlib.suppress(NotFound, KeyError):
                await tokens.authenticate(pool, saved["token"])
                token = saved["token"]
                _save_dev(path, url, token)
                return token, signin
        _, token = await tokens.create_token(pool, "fluxstudio up")
    finally:
        await pool.close()
    _save_dev(path, url, token)
    return token, signin


def _save_dev(path: Path, url: str, token: str) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps({"url": url, "token": token}))
    temp.chmod(0o600)
    temp.replace(path)


async def _demo(settings: Settings, url: str, token: str, console: Console) -> None:
    """Generate a clip, upload it through the API and follow the transcode, as a user would."""
    from fluxstudio.commands.sample import sample_args
    from fluxstudio.commands.upload import FluxClient, upload_and_follow
    from fluxstudio.media import find_tools

    clip = settings.home / "demo.mp4"
    if not clip.is_file():
        console.print("generating a 10 s 1080p demo clip")
        tools = find_tools(settings.ffmpeg_path, settings.ffprobe_path)
        process = await asyncio.create_subprocess_exec(
            *sample_args(tools.ffmpeg, clip, seconds=10, width=1920, height=1080, fps=30)
        )
        if await process.wait() != 0:
            console.print("[red]could not generate the demo clip[/red]")
            return
    try:
        async with FluxClient(url, token) as client:
            result = await upload_and_follow(client, clip, project="demo", wait=True, console=console)
    except Exception as exc:
        log.error("demo_failed", error=str(exc))
        console.print(f"[red]demo failed: {escape(str(exc))}[/red]", soft_wrap=True)
        return
    job = result["job"]
    if job["status"] == "succeeded":
        console.print(f"demo ready; play it: ffplay {result['asset']['playback_url']}", soft_wrap=True)
        print(result["asset"]["playback_url"], flush=True)
    else:
        message = escape(str((job.get("error") or {}).get("message")))
        console.print(f"[red]demo job {job['status']}: {message}[/red]", soft_wrap=True)


async def _relay(output: asyncio.StreamReader) -> None:
    """Copy a worker's stderr to ours, looking `sys.stderr` up each time: while a progress bar is live,
    rich has replaced it with a proxy that prints whole lines above the bar."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await output.read(65536):
        sys.stderr.write(decoder.decode(chunk))
        sys.stderr.flush()


class WorkerSupervisor:
    """Runs N `fluxstudio worker` processes; restarts one that dies with back-off; stops them all."""

    def __init__(self, count: int, env: dict[str, str]) -> None:
        self.count = count
        self.env = env
        self.tasks: list[asyncio.Task[None]] = []
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = False

    async def start(self) -> None:
        self.tasks = [asyncio.create_task(self._keep(index)) for index in range(self.count)]

    async def _keep(self, index: int) -> None:
        delay = 1.0
        while not self.stopping:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "fluxstudio",
                "worker",
                env=self.env,
                # Its own group, so a terminal's Ctrl-C reaches only `up`, which stops workers in order;
                # SIGTERM on `up`'s death, so a killed `up` leaves no worker behind.
                start_new_session=True,
                preexec_fn=parent_death_preexec(signal.SIGTERM),
                stderr=asyncio.subprocess.PIPE,
            )
            self.processes[index] = process
            log.info("worker_started", index=index, pid=process.pid)
            started = asyncio.get_running_loop().time()
            assert process.stderr is not None
            relay = asyncio.create_task(_relay(process.stderr))
            code = await process.wait()
            with contextlib.suppress(TimeoutError):  # a grandchild may hold the pipe; do not wait on it
                await asyncio.wait_for(relay, 5)
            if self.stopping:
                return
            if asyncio.get_running_loop().time() - started > 60:
                delay = 1.0
            log.warning("worker_exited", index=index, pid=process.pid, exit_code=code, restart_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        self.stopping = True
        running = [p for p in self.processes.values() if p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), WORKER_STOP_GRACE_S)
        except TimeoutError:
            for process in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
