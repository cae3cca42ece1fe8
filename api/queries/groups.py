"""Field groups: a named set of fields (a 生産組合, a JA branch) kept by the
officers of the group's municipality, to publish an advisory to all of them
at once. Officers see and change the groups of their region, admins all;
other roles keep no groups (403). A group outside the caller's region is
missing (404), and so is a member field the caller may not change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import HTTPException
from psycopg import AsyncConnection, errors
from psycopg.rows import dict_row
from pydantic import AfterValidator, Field

from agri.api.accounts import User
from agri.api.pagination import page
from agri.api.queries import access, advisories
from agri.api.queries.advisories import (
    MAX_TARGET_FIELDS,
    REVIEWERS,
    FieldId,
    Municipality,
    Strict,
    as_model,
    no_nul,
)

NAME_MAX = 200
PAGE = 100

Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, examples=["藤崎町 第3生産組合"]),
                 AfterValidator(no_nul)]
Members = Annotated[list[FieldId], Field(max_length=MAX_TARGET_FIELDS)]


class NewGroup(Strict):
    name: Name
    municipality: Municipality
    fields: Members = []


class GroupMembers(Strict):
    fields: Members


_COLUMNS = ("g.id, g.name, g.municipality, g.created_by, g.created_at, g.updated_at, "
            "(SELECT count(*) FROM field_group_members m WHERE m.group_id = g.id) AS members")


def _item(r: dict) -> dict:
    return {"id": r["id"], "name": r["name"], "municipality": r["municipality"],
            "members": r["members"], "created_by": r["created_by"],
            "created_at": r["created_at"].isoformat(), "updated_at": r["updated_at"].isoformat()}


async def list_groups(conn: AsyncConnection, user: User, *, after: int | None = None,
                      limit: int = PAGE) -> dict:
    """A page of the groups of the user's region, newest first."""
    access.require_role(user, *REVIEWERS, action="keeping field groups")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM field_groups g WHERE {access.in_region('g.municipality')} "
            "AND (%(after)s::bigint IS NULL OR g.id < %(after)s) ORDER BY g.id DESC "
            "LIMIT %(n)s", {**access.who(user), "after": after, "n": limit + 1})
        rows = await cur.fetchall()
    return page([_item(r) for r in rows], limit)


async def get_group(conn: AsyncConnection, user: User, group_id: int, *,
                    lock: bool = False) -> dict:
    """The group with its member fields (id, name, owner), else 404."""
    access.require_role(user, *REVIEWERS, action="keeping field groups")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM field_groups g WHERE g.id = %(id)s AND "
            f"{access.in_region('g.municipality')}" + (" FOR UPDATE" if lock else ""),
            {**access.who(user), "id": group_id})
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(404, f"no group {group_id} in your region")
        await cur.execute("SELECT f.id, f.name, f.owner, f.municipality FROM field_group_members m "
                          "JOIN fields f ON f.id = m.field_id WHERE m.group_id = %s "
                          "ORDER BY f.id", (group_id,))
        members = await cur.fetchall()
    return _item(row) | {"fields": members}


async def _replace_members(conn: AsyncConnection, user: User, group_id: int,
                           ids: list[str]) -> None:
    await conn.execute("DELETE FROM field_group_members WHERE group_id = %s AND "
                       "NOT (field_id = ANY(%s))", (group_id, ids))
    await conn.execute("INSERT INTO field_group_members (group_id, field_id, added_by) "
                       "SELECT %s, unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
                       (group_id, ids, user.name))


async def create_group(conn: AsyncConnection, user: User, new: NewGroup | Mapping) -> dict:
    """A new group of a municipality of the user's region (else 403), with its
    first members (fields of the region; else 404). A name is used once per
    municipality (409)."""
    access.require_role(user, *REVIEWERS, action="keeping field groups")
    new = as_model(NewGroup, new)
    try:
        async with conn.transaction():
            await advisories.require_region(conn, user, [new.municipality])
            ids = await advisories.changeable_fields(conn, user, new.fields)
            cur = await conn.execute(
                "INSERT INTO field_groups (name, municipality, created_by) VALUES (%s, %s, %s) "
                "RETURNING id", (new.name, new.municipality, user.name))
            group_id = (await cur.fetchone())[0]
            await _replace_members(conn, user, group_id, ids)
    except errors.UniqueViolation:
        raise HTTPException(409, f"{new.municipality} has a group named {new.name!r} already: "
                                 "choose another name or change that group's members") from None
    return await get_group(conn, user, group_id)


async def set_members(conn: AsyncConnection, user: User, group_id: int,
                      members: GroupMembers | Mapping) -> dict:
    """Make the group's members exactly ``fields`` (each one the user may
    change, else 404 and nothing changes)."""
    access.require_role(user, *REVIEWERS, action="keeping field groups")
    members = as_model(GroupMembers, members)
    async with conn.transaction():
        await get_group(conn, user, group_id, lock=True)
        ids = await advisories.changeable_fields(conn, user, members.fields)
        await _replace_members(conn, user, group_id, ids)
        await conn.execute("UPDATE field_groups SET updated_at = now() WHERE id = %s",
                           (group_id,))
    return await get_group(conn, user, group_id)
