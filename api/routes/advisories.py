"""Advisories: officers review the analytics' drafts (and write their own),
edit, publish them to fields, a group or municipalities of their region, and
withdraw them; farmers read the published ones reaching their fields."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query

from agri.api.deps import Conn, CurrentUser, PrimaryConn
from agri.api.pagination import MAX_CURSOR, Cursor
from agri.api.queries import advisories
from agri.api.queries.advisories import PAGE, AdvisoryEdit, NewAdvisory, Target

# Answers every route here may give besides its own (the detail says what to do).
ERRORS = {400: {"description": "a NUL byte or a malformed request"},
          401: {"description": "no valid bearer token"},
          403: {"description": "your role may not do this, or a municipality outside your region"},
          404: {"description": "not there, or not yours to see"},
          409: {"description": "withdrawn, or the name is taken: the detail says what to do"}}
router = APIRouter(prefix="/api/v1", tags=["advisories"], responses=ERRORS)

AdvisoryId = Annotated[int, Path(ge=1, le=MAX_CURSOR, description="the advisory's id")]
PageLimit = Annotated[int, Query(ge=1, le=PAGE, description="items per page")]

EXAMPLE = {
    "id": 812, "kind": "cold-damage", "severity": "warning", "status": "published",
    "municipality": "Fujisaki", "fields": ["fujisaki-0412"],
    "reason": "mean 18.6 C over the last 3 days before the sensitive stage",
    "valid_from": "2026-07-18", "valid_until": "2026-07-24",
    "title": {"ja": "低温注意：深水管理で幼穂を守りましょう",
              "en": "Cold alert: protect the young panicles with deep water"},
    "body": {"ja": "7月24日まで、水深を10cm以上に保ってください。",
             "en": "Keep the water 10 cm deep or more until 24 July."},
    "computed_for": "2026-07-18", "published_at": "2026-07-18T08:12:40+00:00",
    "updated_at": "2026-07-18T08:12:40+00:00"}
REVIEWED = EXAMPLE | {
    "fields": ["fujisaki-0412", "fujisaki-0413"], "evidence": {"recent_tmean_c": 18.6},
    "targets": [{"id": 33, "target": "group", "fields": [], "group": 4, "municipalities": [],
                 "published_by": "sato", "published_at": "2026-07-18T08:12:40+00:00",
                 "withdrawn_at": None}],
    "created_by": None, "edited_by": "sato", "edited_at": "2026-07-18T08:10:02+00:00",
    "withdrawn_by": None, "withdrawn_at": None,
    "history": [{"action": "edit", "by": "sato", "at": "2026-07-18T08:10:02+00:00",
                 "changes": {"body_ja": {"from": "水深を深く", "to": "水深を10cm以上に"}}},
                {"action": "publish", "by": "sato", "at": "2026-07-18T08:12:40+00:00",
                 "changes": {"target": "group", "group": 4, "fields": [],
                             "municipalities": []}}]}


def _one(example: dict, status: int = 200) -> dict:
    return {status: {"content": {"application/json": {"example": example}}}}


def _page(example: dict) -> dict:
    return _one({"items": [example], "next": None})


@router.get("/advisories", responses=_page(EXAMPLE))
async def list_advisories(
        conn: Conn, user: CurrentUser, cursor: Cursor = None, limit: PageLimit = PAGE,
        status: Annotated[Literal["draft", "published", "withdrawn"] | None,
                          Query(description="only advisories in this status")] = None,
        current: Annotated[bool, Query(description="only those valid today")] = False):
    """Advisories newest first. Officers: their region's in every status, with
    evidence, targets and who edited them; farmers: the published ones reaching
    their fields (``fields`` names which). Planners and developers: 403."""
    return await advisories.list_for_user(conn, user, status=status, current=current,
                                          after=cursor, limit=limit)


@router.get("/advisories/{advisory_id}", responses=_one(REVIEWED))
async def get_advisory(advisory_id: AdvisoryId, conn: PrimaryConn, user: CurrentUser):
    """One advisory; its region's officers also get its ``history``."""
    return await advisories.get(conn, user, advisory_id)


@router.post("/advisories", status_code=201, responses=_one(
    REVIEWED | {"id": 813, "kind": "general", "status": "draft", "published_at": None,
                "targets": [], "created_by": "sato", "fields": []}, 201))
async def create_advisory(
        new: Annotated[NewAdvisory, Body(openapi_examples={"draft": {"value": {
            "kind": "general", "severity": "info", "municipality": "Fujisaki",
            "title": {"ja": "稲刈り前の落水", "en": "Drain before harvest"},
            "body": {"ja": "出穂後30日を目安に落水してください。",
                     "en": "Drain about 30 days after heading."},
            "valid_from": "2026-08-25", "valid_until": "2026-09-10"}}})],
        conn: PrimaryConn, user: CurrentUser):
    """Draft an advisory by hand for a municipality of your region (officers,
    admins); publish it when it is ready."""
    return await advisories.create(conn, user, new)


@router.patch("/advisories/{advisory_id}", responses=_one(REVIEWED))
async def edit_advisory(
        advisory_id: AdvisoryId,
        edit: Annotated[AdvisoryEdit, Body(openapi_examples={"text": {"value": {
            "body": {"ja": "7月24日まで、水深を10cm以上に保ってください。"},
            "valid_until": "2026-07-24"}}})],
        conn: PrimaryConn, user: CurrentUser):
    """Change the text, severity or validity of a draft or published advisory
    of your region; every change is kept in its history. A withdrawn one: 409."""
    return await advisories.update(conn, user, advisory_id, edit)


@router.post("/advisories/{advisory_id}/publish", responses=_one(REVIEWED))
async def publish_advisory(
        advisory_id: AdvisoryId,
        target: Annotated[Target, Body(openapi_examples={
            "group": {"summary": "a group of fields", "value": {"group": 4}},
            "fields": {"summary": "fields", "value": {"fields": ["fujisaki-0412"]}},
            "region": {"summary": "whole municipalities", "value": {"region": ["Fujisaki"]}}})],
        conn: PrimaryConn, user: CurrentUser):
    """Publish to fields, a group or municipalities, all inside your region
    (a field or group outside it: 404; a municipality outside it: 403).
    Publishing again adds a target."""
    return await advisories.publish(conn, user, advisory_id, target)


@router.post("/advisories/{advisory_id}/withdraw",
             responses=_one(REVIEWED | {"status": "withdrawn", "withdrawn_by": "sato",
                                        "withdrawn_at": "2026-07-20T01:00:00+00:00"}))
async def withdraw_advisory(advisory_id: AdvisoryId, conn: PrimaryConn, user: CurrentUser):
    """Withdraw an advisory of your region from every target."""
    return await advisories.withdraw(conn, user, advisory_id)


@router.get("/fields/{field_id}/advice", responses=_page(EXAMPLE))
async def field_advice(field_id: str, conn: Conn, user: CurrentUser, cursor: Cursor = None,
                       limit: PageLimit = PAGE):
    """Advisories for the field, newest first: the published ones reaching it
    (itself, a group it belongs to, its municipality); its region's officers
    and admins also see drafts and withdrawn ones (``status``)."""
    return await advisories.for_field(conn, user, field_id, after=cursor, limit=limit)
