"""Fields: the list a user may see (with each field's status colour), the
same as GeoJSON for maps, and a field with its current season and what the
analytics know of it: growth stage and expected dates, harvest window,
risks, water against its target band, the latest image statistics and
protein estimate.

Lists are for farmers, officers, developers and admins; a planner gets 403
(planners see aggregates only: KPIs and open data). Lists are in id order;
``next`` is the id of a page's last field, passed back as ``cursor``."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import ORJSONResponse

from agri.api.accounts import Role
from agri.api.deps import Conn, CurrentUser, SettingsDep
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import DEFAULT_LIMIT, Limit, page
from agri.api.queries import access, conditions, field_status, results

router = APIRouter(prefix="/api/v1", tags=["fields"])

# Each route takes the user before its connection: the token lookup borrows a
# pool connection of its own and gives it back first, so concurrent requests
# never each hold one connection while waiting for a second.

LISTERS = (Role.FARMER, Role.OFFICER, Role.DEVELOPER, Role.ADMIN)
GEOJSON_LIMIT = 1000  # features per page by default

AsOf = Annotated[date | None, Query(description="results as computed for this day or the "
                                                "latest day before it (default: latest)")]
FieldCursor = Annotated[str | None, Query(
    max_length=64, pattern=f"^{FIELD_ID_RE.pattern}$",
    description="the `next` of the previous page (a field id)")]
Municipality = Annotated[str | None, Query(
    max_length=100, pattern=r"^[^\x00-\x1f]+$", description="only fields in this municipality",
    examples=["Hirosaki"])]
Owner = Annotated[str | None, Query(
    max_length=64, pattern=r"^[A-Za-z0-9_.@-]{1,64}$",
    description="only fields of this owner (user name)")]

_STATUS_EXAMPLE = {"colour": "yellow", "label": {"ja": "注意", "en": "Attention"},
                   "reasons": [{"code": "water_below", "colour": "yellow",
                                "text": {"ja": "水位が目標より低い状態が 3 時間続いています",
                                         "en": "water below the target band for 3 h"}}],
                   "as_of": "2026-07-15T09:40:00+09:00"}
_ITEM_EXAMPLE = {"id": "hirosaki-b01-03", "name": "弘前 3", "owner": "sato",
                 "municipality": "Hirosaki", "cultivar": "seiten-no-hekireki",
                 "transplanted_on": "2026-05-20", "area_m2": 3012.5,
                 "centroid": [140.4631, 40.6032], "status": _STATUS_EXAMPLE}

_LIST = """SELECT f.id, f.name, f.owner, f.municipality, f.cultivar, f.transplanted_on,
       f.area_m2, f.centroid_lon, f.centroid_lat{geometry}
FROM fields f
WHERE {visible}
  AND (%(cursor)s::text IS NULL OR f.id > %(cursor)s)
  AND (%(municipality)s::text IS NULL OR f.municipality = %(municipality)s)
  AND (%(owner)s::text IS NULL OR f.owner = %(owner)s)
ORDER BY f.id LIMIT %(limit)s"""


async def _rows(conn, user, *, cursor, limit, municipality, owner, geometry: bool):
    access.require_role(user, *LISTERS, action="listing fields")
    query = _LIST.format(geometry=", f.geometry" if geometry else "",
                         visible=access.FIELD_VISIBLE)
    cur = await conn.execute(query, {"cursor": cursor, "municipality": municipality,
                                     "owner": owner, "limit": limit + 1, **access.who(user)})
    return await cur.fetchall()


def _item(row, status: field_status.Status | None) -> dict:
    fid, name, owner, municipality, cultivar, planted, area, lon, lat = row[:9]
    return {"id": fid, "name": name, "owner": owner, "municipality": municipality,
            "cultivar": cultivar, "transplanted_on": planted and planted.isoformat(),
            "area_m2": area, "centroid": None if lon is None else [lon, lat],
            "status": status.to_json() if status else None}


@router.get("/fields", responses={
    200: {"content": {"application/json": {"example": {
        "items": [_ITEM_EXAMPLE], "next": "hirosaki-b01-03"}}}},
    403: {"content": {"application/json": {"example": {
        "detail": "listing fields is for farmer, officer, developer, admin; you are signed in "
                  "as planner"}}}}})
async def list_fields(user: CurrentUser, conn: Conn, cursor: FieldCursor = None,
                      limit: Limit = DEFAULT_LIMIT, municipality: Municipality = None,
                      owner: Owner = None):
    """The fields the user may see, in id order, each with its status colour
    and the reasons for it: a farmer their own and those shared with them,
    an officer their region's, a developer those their devices are on."""
    rows = await _rows(conn, user, cursor=cursor, limit=limit, municipality=municipality,
                       owner=owner, geometry=False)
    statuses = await field_status.field_statuses(conn, user, [r[0] for r in rows[:limit]])
    return page([_item(r, statuses.get(r[0])) for r in rows], limit)


@router.get("/fields.geojson", response_class=ORJSONResponse, responses={
    200: {"content": {"application/geo+json": {"example": {
        "type": "FeatureCollection", "next": None,
        "features": [{"type": "Feature", "id": "hirosaki-b01-03",
                      "geometry": {"type": "Polygon", "coordinates": [[
                          [140.4629, 40.6030], [140.4633, 40.6030], [140.4633, 40.6034],
                          [140.4629, 40.6034], [140.4629, 40.6030]]]},
                      "properties": {**{k: v for k, v in _ITEM_EXAMPLE.items()
                                        if k not in ("id", "status", "centroid")},
                                     "status": "yellow", "status_label": {
                                         "ja": "注意", "en": "Attention"},
                                     "reasons": ["water_below"]}}]}}}}})
async def fields_geojson(user: CurrentUser, conn: Conn, cursor: FieldCursor = None,
                         limit: Limit = GEOJSON_LIMIT, municipality: Municipality = None,
                         owner: Owner = None):
    """The fields of :func:`list_fields` as a GeoJSON FeatureCollection (RFC
    7946, lon/lat) for maps, each feature's ``status`` its colour and
    ``reasons`` the codes behind it; ``next`` (a foreign member) pages on."""
    rows = await _rows(conn, user, cursor=cursor, limit=limit, municipality=municipality,
                       owner=owner, geometry=True)
    statuses = await field_status.field_statuses(conn, user, [r[0] for r in rows[:limit]])
    features = []
    for row in rows[:limit]:
        item = _item(row, None)
        status = statuses.get(row[0])
        props = {k: v for k, v in item.items() if k not in ("id", "status", "centroid")}
        props.update(status=status and status.colour, status_label=status and status.label,
                     reasons=[r.code for r in status.reasons] if status else [])
        features.append({"type": "Feature", "id": row[0], "geometry": row[9],
                         "properties": props})
    more = len(rows) > limit
    return ORJSONResponse({"type": "FeatureCollection", "features": features,
                           "next": rows[limit - 1][0] if more else None},
                          media_type="application/geo+json")


async def _field(conn, user, field_id: str):
    row = (await access.visible_field(conn, user, field_id)
           if FIELD_ID_RE.fullmatch(field_id) else None)
    if row is None:
        raise HTTPException(404, f"no field {field_id[:64]!r}")
    return row


@router.get("/fields/{field_id}", responses={200: {"content": {"application/json": {"example": {
    "id": "hirosaki-b01-03", "name": "弘前 3", "municipality": "Hirosaki",
    "polygon_uuid": "5b0f3c1e-8a2d-4c7e-9f41-2d6b8e0a7c13",
    "season": {"year": 2026, "cultivar": "seiten-no-hekireki", "transplanted_on": "2026-05-20"},
    "status": _STATUS_EXAMPLE,
    "stage": {"computed_for": "2026-07-15", "dvi": 0.71, "name": "panicle development",
              "heading": {"date": "2026-08-04", "observed": False},
              "maturity": {"date": "2026-09-16", "observed": False}},
    "harvest_window": {"opens": "2026-09-12", "closes": "2026-09-22"},
    "risks": [{"kind": "cold", "level": "low", "value": 7.1}]}}}},
    404: {"content": {"application/json": {"example": {"detail": "no field 'hirosaki-b01-99'"}}}}})
async def field_detail(field_id: str, user: CurrentUser, conn: Conn, settings: SettingsDep,
                       as_of: AsOf = None):
    """The field with its status colour (and ``polygon_uuid``, the uuid of the
    筆ポリゴン it was imported from, else null), its current season and analytics
    results (``stage``, ``harvest_window``, ``risks``, ``water``,
    ``index_stats``, ``protein``); a result the analytics have not computed
    yet is null."""
    row = await _field(conn, user, field_id)
    fid, name, owner, cultivar, transplanted_on, municipality, _geometry, area, uuid = row
    history = await results.seasons(conn, fid)
    devices = await access.field_devices(conn, user, fid)
    found = await conditions.latest(conn, field_status.probes([(d, p, fid) for d, p in devices]),
                                    max_future_s=settings.max_future_s)
    current = await results.current(conn, fid, as_of)
    water, risks = current["water"], current["risks"]
    status = field_status.judge_one(fid, devices, found, water, risks) if as_of is None else (
        await field_status.field_statuses(conn, user, [fid])).get(fid)
    return {
        "id": fid, "name": name, "owner": owner, "municipality": municipality,
        "area_m2": area, "polygon_uuid": uuid,
        "season": history[0] if history else {"year": None, "cultivar": cultivar,
                                              "transplanted_on": None},
        "seasons": history,
        "status": status.to_json() if status else None,
        "stage": current["stage"],
        "harvest_window": current["harvest_window"],
        "risks": risks,
        "water": water,
        "index_stats": await results.index_stats(conn, fid, as_of),
        "protein": await results.protein(conn, fid, as_of),
    }
