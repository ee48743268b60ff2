"""The first schema: users and their API tokens, projects, assets, jobs, renditions, collaboration, uploads.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Ids are text made by fluxstudio.ids.new_id (opaque, prefixed). Every time is timestamptz defaulting to
now(). Statuses are text with CHECK constraints rather than enum types: adding a status later is one
ALTER of a constraint, not an enum migration that cannot run in a transaction.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UPGRADE = """
CREATE TABLE users (
    id          text PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at);

CREATE TABLE projects (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_user_idx ON projects (user_id, created_at);

CREATE TABLE assets (
    id            text PRIMARY KEY,
    project_id    text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    content_type  text,
    size_bytes    bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    source_key    text,
    status        text NOT NULL DEFAULT 'uploaded'
                  CHECK (status IN ('uploaded', 'processing', 'ready', 'failed')),
    media         jsonb,
    playback_key  text,
    error         jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assets_project_idx ON assets (project_id, created_at);

CREATE TABLE jobs (
    id               text PRIMARY KEY,
    asset_id         text NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    kind             text NOT NULL DEFAULT 'hls' CHECK (kind IN ('hls')),
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    options          jsonb NOT NULL DEFAULT '{}'::jsonb,
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    lease_until      timestamptz,
    worker           text,
    error            jsonb,
    idempotency_key  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX jobs_idempotency_idx ON jobs (asset_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The reconciler looks for queued rows and for running rows whose lease has expired.
CREATE INDEX jobs_status_lease_idx ON jobs (status, lease_until);
CREATE INDEX jobs_asset_idx ON jobs (asset_id, created_at);

CREATE TABLE renditions (
    id                 text PRIMARY KEY,
    job_id             text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    asset_id           text NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    name               text NOT NULL,
    width              integer,
    height             integer,
    bandwidth          bigint,
    average_bandwidth  bigint,
    codecs             text,
    frame_rate         double precision,
    playlist_key       text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, name)
);
CREATE INDEX renditions_asset_idx ON renditions (asset_id);

-- Yjs updates, appended; a snapshot folds everything up to upto_seq so a room loads quickly.
CREATE TABLE collab_updates (
    room        text NOT NULL,
    seq         bigserial PRIMARY KEY,
    update      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX collab_updates_room_idx ON collab_updates (room, seq);

CREATE TABLE collab_snapshots (
    room        text PRIMARY KEY,
    state       bytea NOT NULL,
    upto_seq    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE upload_capabilities (
    id          text PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    filename    text NOT NULL,
    transcode   boolean NOT NULL DEFAULT false,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
"""

TABLES = (
    "upload_capabilities",
    "collab_snapshots",
    "collab_updates",
    "renditions",
    "jobs",
    "assets",
    "projects",
    "api_tokens",
    "users",
)


def upgrade() -> None:
    # One statement per call: asyncpg prepares each, and a prepared statement holds one command.
    for statement in UPGRADE.split(";\n"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
