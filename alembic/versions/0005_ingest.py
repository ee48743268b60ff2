"""Ingest and integrations: tus uploads, URL imports, Standard Webhooks with a transactional outbox.

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-01

- `tus_uploads`: one resumable upload's state. The bytes are in storage under `tus/{id}/`: S3 multipart
  parts (`multipart_id`, `parts`) plus a `tail` object smaller than a part, or one local file. `offset`
  counts the bytes that are durably stored; `tail_bytes` of them are in the tail object.
- `asset_imports`: a URL import's state (the asset row says `importing` meanwhile), claimed with a lease
  like a job, so a Redis flush or a dead worker loses nothing.
- `webhook_endpoints`, `webhook_deliveries` (the outbox: one row per event and endpoint, written in the
  same transaction as the change it reports) and `webhook_attempts` (the delivery log).
- `assets.status` gains `importing`.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
ALTER TABLE assets DROP CONSTRAINT IF EXISTS assets_status_check;
ALTER TABLE assets ADD CONSTRAINT assets_status_check
    CHECK (status IN ('uploaded', 'processing', 'ready', 'failed', 'importing'));
CREATE TABLE tus_uploads (
    id            text PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id    text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    content_type  text,
    transcode     boolean NOT NULL DEFAULT false,
    length        bigint NOT NULL CHECK (length >= 0),
    "offset"      bigint NOT NULL DEFAULT 0 CHECK ("offset" >= 0),
    metadata      text NOT NULL DEFAULT '',
    multipart_id  text,
    parts         jsonb NOT NULL DEFAULT '[]'::jsonb,
    tail_bytes    bigint NOT NULL DEFAULT 0 CHECK (tail_bytes >= 0),
    asset_id      text,
    job_id        text,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tus_uploads_expiry_idx ON tus_uploads (expires_at) WHERE asset_id IS NULL;
CREATE TABLE asset_imports (
    asset_id     text PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url          text NOT NULL,
    transcode    boolean NOT NULL DEFAULT false,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done')),
    attempt      integer NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX asset_imports_status_idx ON asset_imports (status, lease_until);
CREATE TABLE webhook_endpoints (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url         text NOT NULL,
    events      text[],
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_user_idx ON webhook_endpoints (user_id, created_at);
CREATE TABLE webhook_deliveries (
    id               text PRIMARY KEY,
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    payload          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE TABLE webhook_attempts (
    id            bigserial PRIMARY KEY,
    delivery_id   text NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    endpoint_id   text NOT NULL,
    event_id      text NOT NULL,
    event_type    text NOT NULL,
    attempt       integer NOT NULL,
    status_code   integer,
    error         text,
    duration_ms   integer,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, created_at)
"""

DOWNGRADE = """
DROP TABLE IF EXISTS webhook_attempts;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhook_endpoints;
DROP TABLE IF EXISTS asset_imports;
DROP TABLE IF EXISTS tus_uploads;
UPDATE assets SET status = 'failed' WHERE status = 'importing';
ALTER TABLE assets DROP CONSTRAINT IF EXISTS assets_status_check;
ALTER TABLE assets ADD CONSTRAINT assets_status_check
    CHECK (status IN ('uploaded', 'processing', 'ready', 'failed'))
"""


def _run(script: str) -> None:
    # One statement per call: asyncpg prepares each, and a prepared statement holds one command.
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
