"""The schema's migrations on real PostgreSQL: up, down and up again, concurrent runs, and the constraints."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from fluxstudio.db.migrations import (
    MIGRATION_LOCK_KEY,
    current_revision,
    downgrade,
    head_revision,
    script_location,
    upgrade,
)
from fluxstudio.ids import new_id

REPO = Path(__file__).resolve().parents[1]
TABLES = {
    "users",
    "api_tokens",
    "projects",
    "assets",
    "jobs",
    "renditions",
    "collab_updates",
    "collab_snapshots",
    "upload_capabilities",
    "tus_uploads",
    "asset_imports",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "comments",
    "web_sessions",
    "signin_codes",
}


async def _tables(dsn: str) -> set[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    return {row["tablename"] for row in rows}


def test_scripts_are_found_in_the_checkout() -> None:
    assert script_location() == REPO / "alembic"
    assert head_revision() == "0006"


async def test_upgrade_downgrade_and_upgrade_again(create_database: Callable[[], str]) -> None:
    dsn = create_database()
    assert await current_revision(dsn) is None

    assert await asyncio.to_thread(upgrade, dsn) == head_revision()
    assert await current_revision(dsn) == head_revision()
    assert await _tables(dsn) == TABLES | {"alembic_version"}

    await asyncio.to_thread(upgrade, dsn)  # again: nothing to do, nothing fails
    assert await asyncio.to_thread(downgrade, dsn, "base") is None
    assert await current_revision(dsn) is None
    assert await _tables(dsn) == {"alembic_version"}

    await asyncio.to_thread(upgrade, dsn)
    assert await current_revision(dsn) == head_revision()
    assert await _tables(dsn) == TABLES | {"alembic_version"}


async def _lock_waiters(connection: asyncpg.Connection) -> int:
    return await connection.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )


async def test_concurrent_upgrades_take_turns_on_the_advisory_lock(
    create_database: Callable[[], str],
) -> None:
    dsn = create_database()
    holder = await asyncpg.connect(dsn)
    try:
        # Hold the migrations' lock so that both runs are surely waiting on it at the same time.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        code = "import sys; from fluxstudio.db.migrations import upgrade; upgrade(sys.argv[1])"
        runs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, dsn, cwd=REPO, stderr=asyncio.subprocess.PIPE
            )
            for _ in range(2)
        ]
        deadline = time.monotonic() + 60
        while await _lock_waiters(holder) < 2:
            finished = [run for run in runs if run.returncode is not None]
            assert not finished, (await finished[0].stderr.read()).decode()
            assert time.monotonic() < deadline, "the two upgrades never both waited on the lock"
            await asyncio.sleep(0.05)
        assert await current_revision(dsn) is None  # neither started before the lock was free
        await transaction.rollback()

        for run in runs:
            stderr = await asyncio.wait_for(run.stderr.read(), timeout=60)
            assert await asyncio.wait_for(run.wait(), timeout=60) == 0, stderr.decode()
        assert await holder.fetch("SELECT version_num FROM alembic_version") == [(head_revision(),)]
        assert await _tables(dsn) == TABLES | {"alembic_version"}
        # Released with the transactions that took it: a newcomer gets it at once.
        assert await holder.fetchval("SELECT pg_try_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
    finally:
        await holder.close()


async def _project(connection: asyncpg.Connection) -> str:
    user_id, project_id = new_id("usr"), new_id("prj")
    await connection.execute(
        "INSERT INTO users (id, email) VALUES ($1, $2)", user_id, f"{user_id}@example.com"
    )
    await connection.execute(
        "INSERT INTO projects (id, user_id, name) VALUES ($1, $2, 'p')", project_id, user_id
    )
    return project_id


async def _asset(connection: asyncpg.Connection, project_id: str, status: str = "uploaded") -> str:
    asset_id = new_id("ast")
    await connection.execute(
        "INSERT INTO assets (id, project_id, filename, status) VALUES ($1, $2, 'a.mp4', $3)",
        asset_id,
        project_id,
        status,
    )
    return asset_id


async def test_status_checks_reject_unknown_values(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        project_id = await _project(connection)
        with pytest.raises(asyncpg.CheckViolationError):
            await _asset(connection, project_id, status="bogus")
        asset_id = await _asset(connection, project_id)
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "INSERT INTO jobs (id, asset_id, status) VALUES ($1, $2, 'done')", new_id("job"), asset_id
            )
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                "INSERT INTO jobs (id, asset_id, progress) VALUES ($1, $2, 1.5)", new_id("job"), asset_id
            )


async def test_job_defaults_idempotency_and_cascade(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection:
        project_id = await _project(connection)
        asset_id = await _asset(connection, project_id)
        insert = "INSERT INTO jobs (id, asset_id, idempotency_key) VALUES ($1, $2, $3) RETURNING *"
        job = await connection.fetchrow(insert, new_id("job"), asset_id, "k1")
        assert (job["kind"], job["status"], job["progress"], job["attempt"]) == ("hls", "queued", 0, 0)
        assert job["options"] == {}
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(insert, new_id("job"), asset_id, "k1")
        for _ in range(2):  # jobs without a key never collide
            await connection.execute(insert, new_id("job"), asset_id, None)

        await connection.execute("DELETE FROM projects WHERE id = $1", project_id)
        assert await connection.fetchval("SELECT count(*) FROM jobs WHERE asset_id = $1", asset_id) == 0


async def test_every_time_column_is_timestamptz(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND (column_name LIKE '%\\_at' OR column_name = 'lease_until')"
    )
    assert len(rows) >= 18
    assert {row["data_type"] for row in rows} == {"timestamp with time zone"}
