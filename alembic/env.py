"""Alembic's entrypoint: runs the migrations online, through asyncpg, under a PostgreSQL advisory lock.

The database URL comes from `config.attributes["database_url"]` when `fluxstudio.db.migrations` calls us,
else from the DATABASE_URL environment variable (this file is an entrypoint, like the CLI, so it may
read the environment). The connection is made by `fluxstudio.db.pool.connect`, so a DSN means exactly
what it means to the application's pool: postgres:// and postgresql://, sslmode, socket hosts, the
PgBouncer-safe statement settings, and the same `Unavailable` error when the server is down.

Several replicas may run `fluxstudio migrate` at once: every run takes the same transaction-scoped
advisory lock before alembic reads the current revision, so the runs take turns and each later one finds
the schema at head and does nothing.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from fluxstudio.db.migrations import MIGRATION_LOCK_KEY
from fluxstudio.db.pool import connect

config = context.config
if config.config_file_name is not None:  # run as `alembic ...` with alembic.ini; not from fluxstudio
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise SystemExit("DATABASE_URL is not set: alembic needs it, e.g. postgresql://user:pw@host:5432/db")
    return url


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        # The transaction-scoped lock (not pg_advisory_lock) is released by the COMMIT or ROLLBACK
        # itself: it cannot leak when the process dies, nor behind PgBouncer in transaction mode, where
        # a later unlock could reach a different server connection than the one holding the lock.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_online() -> None:
    dsn = database_url()
    dbapi = PGDialect_asyncpg.import_dbapi()

    def creator() -> object:
        # `creator` rather than `async_creator` so that SQLAlchemy's own prepared statement cache is
        # off too (see the PgBouncer note in fluxstudio.db.pool).
        return dbapi.connect(
            async_creator_fn=lambda: connect(dsn, application_name="fluxstudio-migrate"),
            prepared_statement_cache_size=0,
        )

    engine = create_async_engine("postgresql+asyncpg://", creator=creator, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run them against a database")

# A private loop, not asyncio.run: asyncio.run would also clear the caller's current event loop.
with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
    runner.run(run_online())
