"""Jobs: hand-backs that do not count as attempts, and a not-before time for retries with back-off.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

`attempt` counts claims and is the fencing token, so it only ever grows: a worker that hands a job back
on shutdown must not give its attempt number to the next claimant. `released` counts those hand-backs;
the attempts a job has used are `attempt - released`. `run_after` holds a queued job back after a
transient failure; the claim ignores a row until then.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE jobs ADD COLUMN released integer NOT NULL DEFAULT 0 CHECK (released >= 0),"
        " ADD COLUMN run_after timestamptz"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN run_after, DROP COLUMN released")
