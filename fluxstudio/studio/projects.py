"""Projects: a user's folders of assets, and the one place where ownership is decided.

Every object a user can name (asset, job, upload capability) hangs off a project, so "may this user see
it?" is always "does the join to `projects.user_id` say so?". The SQL fragments below are that join; other
modules of `studio/` use them instead of writing their own. Another user's object is `NotFound`, with the
same message as an object that does not exist: a 403 would confirm that the id is real.
"""

from __future__ import annotations

import unicodedata

import asyncpg

from fluxstudio.errors import Invalid, NotFound
from fluxstudio.ids import new_id
from fluxstudio.studio.models import Project
from fluxstudio.studio.users import User

NAME_MAX = 200

#: `FROM` clause of an asset together with its owner: filter with `p.user_id = <the caller>`.
OWNED_ASSETS = "assets a JOIN projects p ON p.id = a.project_id"

_COLUMNS = "id, name, created_at"

Db = asyncpg.Pool | asyncpg.Connection


def check_project_name(name: str) -> str:
    """The stored form of a project name: NFC, trimmed, 1 to NAME_MAX characters, no control characters."""
    if not isinstance(name, str):
        raise Invalid("a project name must be a string")
    value = unicodedata.normalize("NFC", name).strip()
    if not value:
        raise Invalid("a project name must not be empty")
    if len(value) > NAME_MAX:
        raise Invalid(f"a project name must be at most {NAME_MAX} characters")
    # Refused rather than removed: a name is typed by a person, who should see what was wrong with it.
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value):
        raise Invalid("a project name must not contain control or invisible formatting characters")
    return value


async def create_project(pool: Db, user: User, name: str) -> Project:
    row = await pool.fetchrow(
        f"INSERT INTO projects (id, user_id, name) VALUES ($1, $2, $3) RETURNING {_COLUMNS}",
        new_id("prj"),
        user.id,
        check_project_name(name),
    )
    return Project(**dict(row))


async def list_projects(pool: Db, user: User) -> list[Project]:
    """The user's projects, oldest first."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM projects WHERE user_id = $1 ORDER BY created_at, id", user.id
    )
    return [Project(**dict(row)) for row in rows]


async def get_project(pool: Db, user: User, project_id: str) -> Project:
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM projects WHERE id = $1 AND user_id = $2", project_id, user.id
    )
    if row is None:
        raise NotFound(f"no project has the id {project_id[:64]!r}")
    return Project(**dict(row))
