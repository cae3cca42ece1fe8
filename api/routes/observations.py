"""Observations officers record of a field (heading and maturity dates, lab
protein, yields, notes): the analytics' next run uses them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query, Response

from agri.analytics.observations import KINDS
from agri.api.deps import Conn, CurrentUser, PrimaryConn
from agri.api.pagination import MAX_CURSOR, Cursor, Limit
from agri.api.queries import observations
from agri.api.queries.observations import PAGE, NewObservation

# Answers every route here may give besides its own (the detail says what to do).
ERRORS = {400: {"description": "a NUL byte or a malformed request"},
          401: {"description": "no valid bearer token"},
          403: {"description": "your role may not do this, or a municipality outside your region"},
          404: {"description": "not there, or not yours to see"}}
router = APIRouter(prefix="/api/v1", tags=["observations"], responses=ERRORS)

RECORD = {"id": 5120, "field": "fujisaki-0412", "kind": "heading", "date": "2026-08-03",
          "value": None, "note": "穂揃い", "recorded_by": "sato", "source": "api",
          "created_at": "2026-08-03T02:10:00+00:00", "updated_at": "2026-08-03T02:10:00+00:00"}


def _one(example: dict, status: int = 200) -> dict:
    return {status: {"content": {"application/json": {"example": example}}}}


@router.post("/fields/{field_id}/observations", status_code=201,
             responses=_one(RECORD | {"added": True}, 201))
async def record_observation(
        field_id: str, response: Response, conn: PrimaryConn, user: CurrentUser,
        new: Annotated[NewObservation, Body(openapi_examples={
            "heading": {"summary": "heading date", "value": {
                "kind": "heading", "date": "2026-08-03", "note": "穂揃い"}},
            "protein": {"summary": "lab protein", "value": {
                "kind": "lab_protein", "date": "2026-10-02", "value": 6.4}}})]):
    """Record an observation of a field of your region (officers, admins).
    One of the same kind and date is replaced (``added`` false, status 200)."""
    item, added = await observations.record(conn, user, field_id, new)
    if not added:
        response.status_code = 200
    return item | {"added": added}


@router.get("/fields/{field_id}/observations", responses=_one({"items": [RECORD],
                                                               "next": None}))
async def list_observations(
        field_id: str, conn: Conn, user: CurrentUser, cursor: Cursor = None,
        limit: Limit = PAGE,
        kind: Annotated[Literal[tuple(KINDS)] | None,  # type: ignore[valid-type]
                        Query(description="only records of this kind")] = None,
        year: Annotated[int | None, Query(ge=1900, le=2200)] = None):
    """The field's records, newest first (whoever sees the field)."""
    return await observations.list_for_field(conn, user, field_id, kind=kind, year=year,
                                             after=cursor, limit=limit)


@router.delete("/fields/{field_id}/observations/{observation_id}", status_code=204)
async def remove_observation(
        field_id: str, observation_id: Annotated[int, Path(ge=1, le=MAX_CURSOR)],
        conn: PrimaryConn, user: CurrentUser):
    """Remove a record (officers, admins of the field's region): the analytics
    stop using it; the platform keeps what it was and who removed it."""
    await observations.remove(conn, user, field_id, observation_id)
    return Response(status_code=204)
