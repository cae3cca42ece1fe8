"""Field groups (a 生産組合, a JA branch) that officers of a region keep to
publish an advisory to all their fields at once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from agri.api.deps import CurrentUser, PrimaryConn
from agri.api.pagination import MAX_CURSOR, Cursor, Limit
from agri.api.queries import groups
from agri.api.queries.groups import PAGE, GroupMembers, NewGroup

# Answers every route here may give besides its own (the detail says what to do).
ERRORS = {400: {"description": "a NUL byte or a malformed request"},
          401: {"description": "no valid bearer token"},
          403: {"description": "your role may not do this, or a municipality outside your region"},
          404: {"description": "not there, or not yours to see"},
          409: {"description": "withdrawn, or the name is taken: the detail says what to do"}}
router = APIRouter(prefix="/api/v1", tags=["groups"], responses=ERRORS)

GroupId = Annotated[int, Path(ge=1, le=MAX_CURSOR, description="the group's id")]
GROUP = {"id": 4, "name": "藤崎町 第3生産組合", "municipality": "Fujisaki", "members": 2,
         "created_by": "sato", "created_at": "2026-05-01T00:00:00+00:00",
         "updated_at": "2026-05-02T00:00:00+00:00"}
DETAIL = GROUP | {"fields": [
    {"id": "fujisaki-0412", "name": "常盤 12", "owner": "kudo", "municipality": "Fujisaki"},
    {"id": "fujisaki-0413", "name": "常盤 13", "owner": "kudo", "municipality": "Fujisaki"}]}


def _one(example: dict, status: int = 200) -> dict:
    return {status: {"content": {"application/json": {"example": example}}}}


@router.get("/groups", responses=_one({"items": [GROUP], "next": None}))
async def list_groups(conn: PrimaryConn, user: CurrentUser, cursor: Cursor = None,
                      limit: Limit = PAGE):
    """The field groups of your region, newest first (officers, admins)."""
    return await groups.list_groups(conn, user, after=cursor, limit=limit)


@router.post("/groups", status_code=201, responses=_one(DETAIL, 201))
async def create_group(
        new: Annotated[NewGroup, Body(openapi_examples={"group": {"value": {
            "name": "藤崎町 第3生産組合", "municipality": "Fujisaki",
            "fields": ["fujisaki-0412", "fujisaki-0413"]}}})],
        conn: PrimaryConn, user: CurrentUser):
    """A new group of a municipality of your region, with its first fields."""
    return await groups.create_group(conn, user, new)


@router.get("/groups/{group_id}", responses=_one(DETAIL))
async def get_group(group_id: GroupId, conn: PrimaryConn, user: CurrentUser):
    """A group of your region with its fields."""
    return await groups.get_group(conn, user, group_id)


@router.put("/groups/{group_id}/members", responses=_one(DETAIL))
async def set_members(
        group_id: GroupId,
        members: Annotated[GroupMembers, Body(openapi_examples={"members": {"value": {
            "fields": ["fujisaki-0412", "fujisaki-0413"]}}})],
        conn: PrimaryConn, user: CurrentUser):
    """Make the group's fields exactly these (fields of your region)."""
    return await groups.set_members(conn, user, group_id, members)
