"""A field and what the analytics know of it: its seasons, growth stage and
expected dates, harvest window, risks, water against its target band, the
latest image statistics and protein estimate; and the advice for it."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from agri.api.deps import Conn, CurrentUser
from agri.api.field_registry import FIELD_ID_RE
from agri.api.queries import access, results

router = APIRouter(prefix="/api/v1", tags=["fields"])

AsOf = Annotated[date | None, Query(description="results as computed for this day or the "
                                                "latest day before it (default: latest)")]


async def _field(conn, user, field_id: str):
    row = (await access.visible_field(conn, user, field_id)
           if FIELD_ID_RE.fullmatch(field_id) else None)
    if row is None:
        raise HTTPException(404, f"no field {field_id[:64]!r}")
    return row


@router.get("/fields/{field_id}", responses={200: {"content": {"application/json": {"example": {
    "id": "hirosaki-b01-03", "name": "弘前 3", "municipality": "Hirosaki",
    "season": {"year": 2026, "cultivar": "seiten-no-hekireki", "transplanted_on": "2026-05-20"},
    "stage": {"computed_for": "2026-07-15", "dvi": 0.71, "name": "panicle development",
              "heading": {"date": "2026-08-04", "observed": False},
              "maturity": {"date": "2026-09-16", "observed": False}},
    "harvest_window": {"opens": "2026-09-12", "closes": "2026-09-22"},
    "risks": [{"kind": "cold", "level": "low", "value": 7.1}]}}}}})
async def field_detail(field_id: str, conn: Conn, user: CurrentUser, as_of: AsOf = None):
    """The field with its current season and analytics results (``stage``,
    ``harvest_window``, ``risks``, ``water``, ``index_stats``, ``protein``);
    a result the analytics have not computed yet is null."""
    row = await _field(conn, user, field_id)
    fid, name, owner, cultivar, transplanted_on, municipality, _geometry, area = row
    history = await results.seasons(conn, fid)
    return {
        "id": fid, "name": name, "owner": owner, "municipality": municipality,
        "area_m2": area,
        "season": history[0] if history else {"year": None, "cultivar": cultivar,
                                              "transplanted_on": None},
        "seasons": history,
        "stage": await results.stage(conn, fid, as_of),
        "harvest_window": await results.harvest_window(conn, fid, as_of),
        "risks": await results.risks(conn, fid, as_of),
        "water": await results.water(conn, fid, as_of),
        "index_stats": await results.index_stats(conn, fid, as_of),
        "protein": await results.protein(conn, fid, as_of),
    }
