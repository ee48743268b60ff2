"""Schema migrations: alembic, driven from code, with the scripts found wherever FluxStudio is installed.

The scripts live in `alembic/` at the top of the repository (so `alembic upgrade head` works in a
checkout, with `alembic.ini`), and `pip install .` copies them into `<prefix>/share/fluxstudio/alembic`
(pyproject's data-files), because a top-level `alembic` package would shadow the alembic library.
A checkout's copy wins, so an edited migration runs without reinstalling.

`upgrade` and `downgrade` block and run their own event loop (alembic is synchronous, and alembic/env.py
drives asyncpg inside it). From async code call them in a thread: `await asyncio.to_thread(upgrade, url)`.
Alembic keeps its migration context in module globals, so run one at a time per process; several
processes (replicas) at once are fine, they take turns on an advisory lock (see alembic/env.py).
"""

from __future__ import annotations

import sysconfig
from importlib import metadata
from pathlib import Path

import alembic.command
import asyncpg
from alembic.config import Config
from alembic.script import ScriptDirectory

from fluxstudio.db.pool import connect
from fluxstudio.errors import FluxError, Unavailable

#: The pg_advisory_xact_lock key every migration run takes (alembic/env.py): "fluxmigr" as a 64-bit number.
MIGRATION_LOCK_KEY = int.from_bytes(b"fluxmigr", "big")

#: Where data-files put the scripts, relative to the installation prefix.
INSTALLED_SCRIPTS = Path("share", "fluxstudio", "alembic")


def script_location() -> Path:
    """The folder holding env.py and versions/: the checkout's if we run from one, else the installed copy."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "alembic.ini").is_file() and (checkout / "alembic" / "env.py").is_file():
        return checkout / "alembic"
    for candidate in _installed_candidates():
        if (candidate / "env.py").is_file():
            return candidate
    raise FluxError(
        "cannot find FluxStudio's migration scripts (alembic/env.py): reinstall the package with pip"
    )


def _installed_candidates() -> list[Path]:
    candidates = []
    try:
        files = metadata.distribution("fluxstudio").files or []
    except metadata.PackageNotFoundError:
        files = []
    # The RECORD names the file as installed, whichever prefix (venv, --user, --prefix) pip used.
    marker = (INSTALLED_SCRIPTS / "env.py").as_posix()
    candidates += [Path(str(f.locate())).resolve().parent for f in files if f.as_posix().endswith(marker)]
    candidates.append(Path(sysconfig.get_path("data")) / INSTALLED_SCRIPTS)
    return candidates


def alembic_config(database_url: str | None = None) -> Config:
    """An alembic Config without an ini file; env.py takes the URL from `attributes`, never from a file."""
    config = Config()
    # ConfigParser interpolates %; a path may contain one.
    config.set_main_option("script_location", str(script_location()).replace("%", "%%"))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> str:
    """Bring the schema up to `revision` and return the revision id reached.

    Safe to repeat, and to run from several processes at once.
    """
    config = alembic_config(database_url)
    alembic.command.upgrade(config, revision)
    return _resolve(config, revision)


def downgrade(database_url: str, revision: str) -> str | None:
    """Take the schema down to `revision` ("base" drops every table; returns None then). For dev and tests."""
    config = alembic_config(database_url)
    alembic.command.downgrade(config, revision)
    return None if revision == "base" else _resolve(config, revision)


def _resolve(config: Config, revision: str) -> str:
    script = ScriptDirectory.from_config(config).get_revision(revision)
    return script.revision if script is not None else revision


def head_revision() -> str:
    """The revision that `upgrade` reaches, read from the scripts without touching a database."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise FluxError("the migration scripts have no head revision")
    return head


async def current_revision(pool_or_dsn: asyncpg.Pool | str) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    query = "SELECT version_num FROM alembic_version"
    try:
        if isinstance(pool_or_dsn, str):
            connection = await connect(pool_or_dsn, application_name="fluxstudio-migrate")
            try:
                return await connection.fetchval(query)
            finally:
                await connection.close()
        return await pool_or_dsn.fetchval(query)
    except asyncpg.UndefinedTableError:
        return None
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
        raise Unavailable(f"PostgreSQL is unavailable: {type(exc).__name__}") from exc
