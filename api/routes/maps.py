"""The harvest-timing map and the protein map as GeoJSON (``application/geo+json``):
the fields you see, coloured as the prefecture's maps. Planners see no
single field, so no map."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from agri.api.accounts import Role
from agri.api.deps import Conn, CurrentUser
from agri.api.queries import access, maps

# Answers every route here may give besides its own (the detail says what to do).
ERRORS = {400: {"description": "a NUL byte or a malformed request"},
          401: {"description": "no valid bearer token"},
          403: {"description": "your role may not do this"},
          404: {"description": "not there, or not yours to see"}}
router = APIRouter(prefix="/api/v1", tags=["maps"], responses=ERRORS)

GEOJSON = "application/geo+json"
VIEWERS = (Role.ADMIN, Role.OFFICER, Role.FARMER, Role.DEVELOPER)
Municipality = Annotated[str | None, Query(min_length=1, max_length=100,
                                           pattern=r"^[^\x00-\x1f\x7f]+$",
                                           description="only this municipality's fields")]
AsOf = Annotated[date | None, Query(description="results as computed up to this day "
                                                "(default: the latest)")]
_POLYGON = {"type": "Polygon", "coordinates": [[[140.4601, 40.6012], [140.4612, 40.6012],
                                                [140.4612, 40.6019], [140.4601, 40.6019],
                                                [140.4601, 40.6012]]]}


def _example(properties: dict, legend: list[dict], kind: str) -> dict:
    return {"content": {GEOJSON: {"example": {
        "type": "FeatureCollection", "map": kind, "as_of": None, "truncated": False,
        "legend": legend,
        "features": [{"type": "Feature", "id": "hirosaki-b01-03", "geometry": _POLYGON,
                      "properties": {"id": "hirosaki-b01-03", "name": "弘前 3",
                                     "municipality": "Hirosaki", **properties}}]}}}}


@router.get("/harvest-map", response_class=JSONResponse, responses={200: _example(
    {"harvest_window": {"opens": "2026-09-12", "closes": "2026-09-22",
                        "computed_for": "2026-08-20"},
     "order_in_municipality": 4, "order_basis": "map class, then window",
     "harvest_class": 1, "class_basis": "image", "image": 42, "colour": "#d7191c"},
    [{"class": 1, "colour": "#d7191c", "label": {"ja": "早い", "en": "earliest"}}],
    "harvest")})
async def harvest_map(conn: Conn, user: CurrentUser, municipality: Municipality = None,
                      as_of: AsOf = None):
    """Each field's harvest window, place in its municipality's harvest order
    and harvest-timing class: 1 (red) to harvest first, 5 (green) last."""
    access.require_role(user, *VIEWERS, action="the harvest map")
    body = await maps.harvest_features(conn, user, municipality=municipality, as_of=as_of)
    return JSONResponse(body, media_type=GEOJSON)


@router.get("/protein-map", response_class=JSONResponse, responses={200: _example(
    {"protein_pct": 6.12, "protein_class": "acceptable", "rmse_pct": 0.21, "year": 2026,
     "image": 40, "acquired_on": "2026-08-18", "colour": "#ffffbf"},
    [{"class": "target", "above_pct": None, "up_to_pct": 6.0, "colour": "#1a9641",
      "label": {"ja": "目標内", "en": "on target"}}],
    "protein")})
async def protein_map(conn: Conn, user: CurrentUser, municipality: Municipality = None,
                      as_of: AsOf = None):
    """Each field's latest brown-rice protein estimate and its class: target
    (up to 6.0 %), acceptable (up to 6.4 %, the shipping standard), over."""
    access.require_role(user, *VIEWERS, action="the protein map")
    body = await maps.protein_features(conn, user, municipality=municipality, as_of=as_of)
    return JSONResponse(body, media_type=GEOJSON)
