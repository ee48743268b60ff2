"""Time-coded comments on an asset (API.md section 8): the one set of rules REST, MCP and the console share.

Ownership: a comment is seen by whoever may see its asset (the project's owner, and agents acting for
them); anyone else gets NotFound, as for the asset itself. Authorship: a comment records who wrote it,
a person (`user`, the user's id) or an agent (`agent`, the API token it came through), and only that
author changes its text or deletes it; resolving is open to everyone who sees the asset. A reply points
at a top-level comment of the same asset and is deleted with it.

Everything here is hostile input (ARCHITECTURE rule 9): times are checked against the asset's duration,
text is 1 to 10,000 characters, and an annotation is at most 100 shapes and 2,000 points in 0..1 of the
frame. Each change is written to PostgreSQL first and then announced on the asset's Redis channel; a
lost announcement loses a live update, never a comment.
"""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from fluxstudio.errors import Forbidden, InvalidField, NotFound, Unavailable
from fluxstudio.ids import new_id
from fluxstudio.log import get_logger
from fluxstudio.queue import Queue, asset_channel
from fluxstudio.studio import webhooks
from fluxstudio.studio.projects import OWNED_ASSETS, Db
from fluxstudio.studio.users import User

log = get_logger()

TEXT_MAX = 10_000
SHAPES_MAX = 100
POINTS_MAX = 2_000
AuthorKind = Literal["user", "agent"]

Coordinate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class Shape(BaseModel):
    """One stroke of a drawing. `points` are [x, y] in 0..1 of the frame, origin upper left; `width` is
    the stroke's width as a fraction of the frame's width, so a drawing looks the same at any size."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["arrow", "rect", "ellipse", "line", "path"]
    points: list[tuple[Coordinate, Coordinate]] = Field(min_length=1, max_length=POINTS_MAX)
    color: str = Field(default="#ff3b30", pattern=r"^#[0-9a-fA-F]{6}$")
    width: float = Field(default=0.004, gt=0, le=0.1, allow_inf_nan=False)


class Annotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shapes: list[Shape] = Field(min_length=1, max_length=SHAPES_MAX)

    @pydantic.model_validator(mode="after")
    def _bounded(self) -> Annotation:
        if sum(len(shape.points) for shape in self.shapes) > POINTS_MAX:
            raise ValueError(f"at most {POINTS_MAX} points in all")
        return self


class Author(BaseModel):
    id: str
    name: str
    kind: AuthorKind


class Comment(BaseModel):
    id: str
    asset_id: str
    author: Author
    time_s: float
    duration_s: float | None
    text: str
    annotation: Annotation | None
    parent_id: str | None
    resolved: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Writer:
    """Who is acting: the user whose objects these are, and the author it is shown as."""

    user: User
    author_id: str
    name: str
    kind: AuthorKind = "user"

    @classmethod
    def person(cls, user: User) -> Writer:
        return cls(user, user.id, user.email.split("@", 1)[0] or user.email, "user")


_COLUMNS = (
    "c.id, c.asset_id, c.author_id, c.author_name, c.author_kind, c.time_s, c.duration_s, c.text,"
    " c.annotation, c.parent_id, c.resolved, c.created_at, c.updated_at"
)
_OWNED = f"comments c JOIN {OWNED_ASSETS} ON a.id = c.asset_id"


def check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidField("text", "must be a string")
    value = unicodedata.normalize("NFC", text)
    if not value.strip():
        raise InvalidField("text", "must not be empty")
    if len(value) > TEXT_MAX:
        raise InvalidField("text", f"must be at most {TEXT_MAX} characters")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
        raise InvalidField("text", "must not contain control characters other than newline and tab")
    return value


def check_annotation(annotation: object) -> Annotation | None:
    if annotation is None:
        return None
    try:
        return Annotation.model_validate(annotation)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(["annotation", *(str(part) for part in first["loc"])])
        raise InvalidField(where, first["msg"]) from None


def _check_time(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidField(field, "must be a finite number of seconds")
    return float(value)


async def _asset_duration(db: Db, user: User, asset_id: str) -> float | None:
    row = await db.fetchrow(
        f"SELECT a.media FROM {OWNED_ASSETS} WHERE a.id = $1 AND p.user_id = $2", asset_id, user.id
    )
    if row is None:
        raise NotFound(f"no asset has the id {asset_id!r}")
    media = row["media"]
    if isinstance(media, str):
        media = json.loads(media)
    duration = (media or {}).get("duration_s")
    return float(duration) if duration is not None else None


def _comment(row: asyncpg.Record) -> Comment:
    annotation = row["annotation"]
    if isinstance(annotation, str):
        annotation = json.loads(annotation)
    return Comment(
        id=row["id"],
        asset_id=row["asset_id"],
        author=Author(id=row["author_id"], name=row["author_name"], kind=row["author_kind"]),
        time_s=row["time_s"],
        duration_s=row["duration_s"],
        text=row["text"],
        annotation=annotation,
        parent_id=row["parent_id"],
        resolved=row["resolved"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def list_comments(db: Db, user: User, asset_id: str) -> list[Comment]:
    """Every comment of the asset, replies included, by `time_s` then `created_at`."""
    await _asset_duration(db, user, asset_id)
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM {_OWNED} WHERE c.asset_id = $1 AND p.user_id = $2"
        " ORDER BY c.time_s, c.created_at, c.id",
        asset_id,
        user.id,
    )
    return [_comment(row) for row in rows]


async def get_comment(db: Db, user: User, comment_id: str) -> Comment:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM {_OWNED} WHERE c.id = $1 AND p.user_id = $2", comment_id, user.id
    )
    if row is None:
        raise NotFound(f"no comment has the id {comment_id!r}")
    return _comment(row)


async def add_comment(
    pool: asyncpg.Pool,
    queue: Queue | None,
    writer: Writer,
    asset_id: str,
    *,
    time_s: object,
    text: object,
    duration_s: object = None,
    annotation: object = None,
    parent_id: str | None = None,
) -> Comment:
    """A new comment (a reply when `parent_id` is set), announced to the asset's streams."""
    user = writer.user
    duration = await _asset_duration(pool, user, asset_id)
    at = _check_time("time_s", time_s)
    if at < 0 or (duration is not None and at > duration):
        limit = f"0 to {duration:g}" if duration is not None else "at least 0"
        raise InvalidField("time_s", f"must be within the asset's duration ({limit} seconds)")
    length = None
    if duration_s is not None:
        length = _check_time("duration_s", duration_s)
        if length <= 0:
            raise InvalidField("duration_s", "must be null or more than 0 seconds")
        if duration is not None and at + length > duration + 1e-6:
            raise InvalidField("duration_s", "the range must end within the asset's duration")
    body = check_text(text)
    drawing = check_annotation(annotation)
    if parent_id is not None:
        parent = await pool.fetchrow(
            f"SELECT c.asset_id, c.parent_id FROM {_OWNED} WHERE c.id = $1 AND p.user_id = $2",
            parent_id,
            user.id,
        )
        if parent is None or parent["asset_id"] != asset_id:
            raise InvalidField("parent_id", "must be a comment of the same asset")
        if parent["parent_id"] is not None:
            raise InvalidField("parent_id", "must be a top-level comment (replies are not nested)")
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "INSERT INTO comments (id, asset_id, user_id, author_id, author_name, author_kind, time_s,"
            " duration_s, text, annotation, parent_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11)"
            f" RETURNING {_COLUMNS.replace('c.', '')}",
            new_id("cmt"),
            asset_id,
            user.id,
            writer.author_id,
            writer.name[:100],
            writer.kind,
            at,
            length,
            body,
            drawing.model_dump_json() if drawing is not None else None,
            parent_id,
        )
        comment = _comment(row)
        # The outbox: the webhook event commits with the comment, or neither does.
        await webhooks.record_event(connection, user.id, "comment.created", comment.model_dump(mode="json"))
    await _announce(queue, asset_id, "created", comment.model_dump(mode="json"))
    return comment


async def update_comment(
    pool: asyncpg.Pool,
    queue: Queue | None,
    writer: Writer,
    comment_id: str,
    *,
    text: object = None,
    resolved: object = None,
) -> Comment:
    """Change the text (its author only) and/or the resolved flag (anyone who sees the asset)."""
    current = await get_comment(pool, writer.user, comment_id)
    new_text = None
    if text is not None:
        new_text = check_text(text)
        if current.author.id != writer.author_id:
            raise Forbidden("only the comment's author may change its text")
    if resolved is not None and not isinstance(resolved, bool):
        raise InvalidField("resolved", "must be true or false")
    if new_text is None and resolved is None:
        return current
    row = await pool.fetchrow(
        "UPDATE comments SET text = coalesce($2, text), resolved = coalesce($3, resolved),"
        f" updated_at = now() WHERE id = $1 RETURNING {_COLUMNS.replace('c.', '')}",
        comment_id,
        new_text,
        resolved,
    )
    if row is None:  # deleted between the read and the update
        raise NotFound(f"no comment has the id {comment_id!r}")
    comment = _comment(row)
    await _announce(queue, comment.asset_id, "updated", comment.model_dump(mode="json"))
    return comment


async def delete_comment(pool: asyncpg.Pool, queue: Queue | None, writer: Writer, comment_id: str) -> None:
    """Delete a comment (its author only) and its replies; each is announced as deleted."""
    current = await get_comment(pool, writer.user, comment_id)
    if current.author.id != writer.author_id:
        raise Forbidden("only the comment's author may delete it")
    rows = await pool.fetch(
        "WITH gone AS (DELETE FROM comments WHERE id = $1 OR parent_id = $1 RETURNING id, parent_id)"
        " SELECT id FROM gone ORDER BY parent_id IS NULL",  # replies first, then the comment
        comment_id,
    )
    for row in rows:
        await _announce(queue, current.asset_id, "deleted", {"id": row["id"], "asset_id": current.asset_id})


async def _announce(queue: Queue | None, asset_id: str, op: str, comment: dict[str, Any]) -> None:
    """Tell every replica's streams; the row is already written, so a failure here only logs."""
    if queue is None:
        log.warning("comment_not_announced", asset_id=asset_id, reason="redis unavailable")
        return
    try:
        await queue.announce(
            asset_channel(asset_id), {"event": "comment", "data": {"op": op, "comment": comment}}
        )
    except Unavailable as exc:
        log.warning("comment_not_announced", asset_id=asset_id, reason=exc.message)
