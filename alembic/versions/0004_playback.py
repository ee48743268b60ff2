"""Playback: posters, storyboards, MP4 downloads, watch while transcoding, signed playback.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01

`assets.playable` is true once `playback_key` can be played, possibly while its job still runs (then the
key points into that job's growing stream); `jobs.playable_at` records when a job's stream became
playable, so an event stream that joins late can still say so. The extras' keys sit beside
`playback_key`. `playback_policy` decides whether the public paths serve the asset at all.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE assets ADD COLUMN playable boolean NOT NULL DEFAULT false,"
        " ADD COLUMN poster_key text, ADD COLUMN storyboard_key text, ADD COLUMN mp4_key text,"
        " ADD COLUMN playback_policy text NOT NULL DEFAULT 'public'"
        "   CONSTRAINT assets_playback_policy_check CHECK (playback_policy IN ('public', 'signed'))"
    )
    op.execute("UPDATE assets SET playable = true WHERE status = 'ready' AND playback_key IS NOT NULL")
    op.execute("ALTER TABLE jobs ADD COLUMN playable_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN playable_at")
    op.execute(
        "ALTER TABLE assets DROP COLUMN playback_policy, DROP COLUMN mp4_key, DROP COLUMN storyboard_key,"
        " DROP COLUMN poster_key, DROP COLUMN playable"
    )
