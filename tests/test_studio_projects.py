"""Projects on a real PostgreSQL: names validated, and each user sees only their own."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from fluxstudio.errors import Invalid, NotFound
from fluxstudio.studio.projects import NAME_MAX, create_project, get_project, list_projects
from fluxstudio.studio.users import User, ensure_user


async def new_user(pool: asyncpg.Pool) -> User:
    return await ensure_user(pool, f"{uuid.uuid4().hex[:10]}@example.com")


async def test_a_project_is_created_listed_and_read_back(pool):
    user = await new_user(pool)
    first = await create_project(pool, user, "  Holiday  ")
    second = await create_project(pool, user, "Holiday")  # names need not be unique
    assert first.name == "Holiday" and first.id.startswith("prj_") and first.id != second.id
    assert [p.id for p in await list_projects(pool, user)] == [first.id, second.id]
    assert await get_project(pool, user, first.id) == first


async def test_another_users_project_is_not_found_like_a_missing_one(pool):
    owner, stranger = await new_user(pool), await new_user(pool)
    project = await create_project(pool, owner, "Mine")
    with pytest.raises(NotFound) as theirs:
        await get_project(pool, stranger, project.id)
    with pytest.raises(NotFound) as missing:
        await get_project(pool, stranger, "prj_doesnotexist")
    assert str(theirs.value).replace(project.id, "X") == str(missing.value).replace("prj_doesnotexist", "X")
    assert await list_projects(pool, stranger) == []
    assert [p.id for p in await list_projects(pool, owner)] == [project.id]


@pytest.mark.parametrize(
    "name", ["", "   ", "x" * (NAME_MAX + 1), "tab\there", "bell\x07", "rtl\u202eoverride", "nul\x00"]
)
async def test_bad_names_are_invalid_and_nothing_is_stored(pool, name):
    user = await new_user(pool)
    with pytest.raises(Invalid):
        await create_project(pool, user, name)
    assert await list_projects(pool, user) == []


async def test_names_are_normalised_and_may_be_long(pool):
    user = await new_user(pool)
    decomposed = "Cafe\u0301"  # é as e + combining accent
    project = await create_project(pool, user, decomposed)
    assert project.name == "Caf\u00e9"
    assert (await create_project(pool, user, "y" * NAME_MAX)).name == "y" * NAME_MAX
