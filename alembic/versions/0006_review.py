"""Review: time-coded comments on assets, console sessions and one-time sign-in codes.

Revision ID: 0006
Revises: 0002
Create Date: 2026-12-01

A comment belongs to its asset (deleted with it) and to the user who owns the asset's project
(`user_id`, the ownership the queries check); `author_*` records who wrote it, a person or an agent, as it
is shown. Replies point at a top-level comment and go with it. Sessions and sign-in codes are stored as
SHA-256 hashes only, like API tokens.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
CREATE TABLE comments (
    id           text PRIMARY KEY,
    asset_id     text NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    author_id    text NOT NULL,
    author_name  text NOT NULL,
    author_kind  text NOT NULL CHECK (author_kind IN ('user', 'agent')),
    time_s       double precision NOT NULL CHECK (time_s >= 0),
    duration_s   double precision CHECK (duration_s IS NULL OR duration_s > 0),
    text         text NOT NULL CHECK (char_length(text) BETWEEN 1 AND 10000),
    annotation   jsonb,
    parent_id    text REFERENCES comments (id) ON DELETE CASCADE,
    resolved     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX comments_asset_idx ON comments (asset_id, time_s, created_at);
CREATE INDEX comments_parent_idx ON comments (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE web_sessions (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_hash  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz
);
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);

CREATE TABLE signin_codes (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   text NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""

TABLES = ("signin_codes", "web_sessions", "comments")


def upgrade() -> None:
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
