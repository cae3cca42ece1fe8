"""Drone flights and satellite scenes: upload of a multispectral GeoTIFF,
its processing status and per-field statistics, the latest map of a field;
and the drones' spray records.

Who may upload: admins (any image over registered fields), officers (an
image over at least one field of their region) and farmers (over at least
one field of their own; a drone operator is a farmer who owns the drone).
The uploader is recorded. Developers and planners upload nothing; planners
see no single flight or spray record, only the sprayed area per
municipality and year (``/spray-summary``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from rasterio.errors import RasterioError

from agri.analytics import image_store, imagery
from agri.api import image_files, uploads
from agri.api.accounts import Role
from agri.api.deps import Conn, CurrentUser, SettingsDep, UploadingUser, get_databases
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import MAX_CURSOR, Cursor, Limit, page
from agri.api.pools import Databases
from agri.api.queries import access, sprays
from agri.api.queries import imagery as flights_q
from agri.devices.profiles import PROFILES

logger = logging.getLogger(__name__)

# Answers every route here may give besides its own (the detail says what to do).
ERRORS = {400: {"description": "a NUL byte or a malformed request"},
          401: {"description": "no valid bearer token"},
          403: {"description": "your role may not do this"},
          404: {"description": "not there, or not yours to see"}}
router = APIRouter(prefix="/api/v1", tags=["flights"], responses=ERRORS)

INCOMING_DIR = "incoming"  # under AGRI_HOME/images: uploads being received
FORM_FIELDS = frozenset({"source", "captured_at", "drone", "flight"})
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_FLIGHT_CHARS = 100
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
UPLOADERS = (Role.ADMIN, Role.OFFICER, Role.FARMER)
VIEWERS = (Role.ADMIN, Role.OFFICER, Role.FARMER, Role.DEVELOPER)
SPRAY_VIEWERS = (Role.ADMIN, Role.OFFICER, Role.FARMER)
SUMMARY_VIEWERS = (Role.ADMIN, Role.OFFICER, Role.PLANNER)
Index = Literal["ndvi", "gndvi", "ndre"]

_FLIGHT_EXAMPLE = {
    "id": 42, "source": "drone-p4m", "status": "done", "error": None,
    "acquired_at": "2026-08-20T10:15:00+09:00", "uploaded_at": "2026-08-20T13:02:11+09:00",
    "processed_at": "2026-08-20T13:03:40+09:00", "drone": "survey-01", "flight": "B01 朝",
    "uploaded_by": "tanaka", "fields": 3, "status_url": "/api/v1/flights/42"}
_UPLOAD_FORM = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file", "source"],
        "properties": {
            "file": {"type": "string", "format": "binary",
                     "description": "the multispectral GeoTIFF"},
            "source": {"type": "string", "enum": list(imagery.SOURCES),
                       "description": "band map of the image"},
            "captured_at": {"type": "string", "format": "date-time",
                            "example": "2026-08-20T10:15:00+09:00",
                            "description": "when it was taken (ISO 8601 with offset); "
                                           "default: the file's ACQUIRED tag"},
            "drone": {"type": "string", "pattern": DEVICE_ID_RE.pattern,
                      "description": "the drone's device id"},
            "flight": {"type": "string", "maxLength": MAX_FLIGHT_CHARS,
                       "description": "the flight's own name or id"}}}}}}


def _bad(detail: str) -> HTTPException:
    return HTTPException(422, detail)


def _captured(text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _bad(f"captured_at {text[:40]!r} is not an ISO 8601 time (e.g. "
                   "2026-08-20T10:15:00+09:00)") from None
    if value.tzinfo is None:
        raise _bad("captured_at needs its UTC offset (e.g. 2026-08-20T10:15:00+09:00)")
    if not EARLIEST <= value <= datetime.now(UTC) + FUTURE_SLACK:
        raise _bad(f"captured_at {text[:40]!r} is not a time an image can have been taken")
    return value


async def _drone(conn, user, drone: str | None) -> str | None:
    if drone is None or drone == "":
        return None
    if not DEVICE_ID_RE.fullmatch(drone):
        raise _bad("drone is a device id ([A-Za-z0-9_-], up to 64 characters)")
    row = await access.visible_device(conn, user, drone)
    if row is None:
        raise HTTPException(404, f"no drone {drone!r}")
    profile = PROFILES.get(row[1])
    if profile is None or not profile.flights:
        raise _bad(f"device {drone!r} is a {row[1]}, not a drone")
    return drone


@router.post("/flights", status_code=202, openapi_extra={"requestBody": _UPLOAD_FORM},
             responses={
                 202: {"description": "registered; the analytics process it next",
                       "content": {"application/json": {"example": {
                           "id": 42, "status": "pending", "existing": False,
                           "source": "drone-p4m", "acquired_at": "2026-08-20T10:15:00+09:00",
                           "fields": ["hirosaki-b01-03", "hirosaki-b01-04"],
                           "status_url": "/api/v1/flights/42"}}}},
                 200: {"description": "the same file was registered before"},
                 413: {"description": "larger than AGRI_MAX_UPLOAD_MB"},
                 415: {"description": "not multipart/form-data"},
                 422: {"description": "not a usable image, or over none of your fields"}})
async def upload_flight(request: Request, user: UploadingUser, settings: SettingsDep,
                        databases: Annotated[Databases, Depends(get_databases)]):
    """Upload a multispectral GeoTIFF (a drone survey or a satellite scene) as
    ``multipart/form-data``: the file in ``file``, its ``source`` (band map),
    ``captured_at`` unless the file has an ``ACQUIRED`` tag, optionally the
    ``drone`` (device id) and the ``flight``. The image must be over at least
    one field you may change. Answers 202 with the image's id and its status
    URL; the analytics compute its per-field statistics and maps."""
    access.require_role(user, *UPLOADERS, action="uploading a flight's image")
    home = settings.home.resolve()
    upload = await uploads.receive(
        request, directory=home / image_store.IMAGES_DIR / INCOMING_DIR,
        max_bytes=settings.max_upload_mb << 20)
    try:
        async with databases.connection(read=False) as conn:
            return await _register(conn, user, upload, home=home)
    finally:
        upload.discard()


async def _register(conn, user, upload: uploads.Upload, *, home) -> JSONResponse:
    unknown = sorted(set(upload.fields) - FORM_FIELDS)
    if unknown:
        raise _bad(f"unknown form field {unknown[0][:40]!r}; the form has file, "
                   f"{', '.join(sorted(FORM_FIELDS))}")
    if upload.path is None or upload.size == 0:
        raise _bad("send the GeoTIFF in the form field 'file'")
    source = upload.fields.get("source", "").strip().lower()
    if source not in imagery.SOURCES:
        raise _bad(f"source must be one of {', '.join(imagery.SOURCES)}")
    captured = _captured(upload.fields.get("captured_at"))
    flight = upload.fields.get("flight") or None
    if flight is not None and len(flight) > MAX_FLIGHT_CHARS:
        raise _bad(f"flight is at most {MAX_FLIGHT_CHARS} characters")
    drone = await _drone(conn, user, upload.fields.get("drone"))
    name = upload.filename or "the upload"
    try:
        image = await asyncio.to_thread(image_files.check_upload, upload.path, source=source,
                                        name=name)
        outline = await asyncio.to_thread(image_files.footprint, image)
    except imagery.ImageryError as exc:
        raise _bad(str(exc)[:1000]) from None
    except RasterioError as exc:  # a file GDAL opens but cannot read or place
        logger.warning("upload %s by %s unreadable: %s", name[:80], user.name, exc)
        raise _bad(f"{name}: GDAL cannot read it or its georeferencing "
                   f"({type(exc).__name__}); check it with gdalinfo") from None
    if captured is None and image.acquired is None:
        raise _bad(f"{name}: no ACQUIRED tag; say when it was taken in captured_at")
    covered = await flights_q.covered_fields(conn, outline)
    mine = await flights_q.uploadable(conn, user, covered)
    if not mine:
        whose = "your region's" if user.role == Role.OFFICER else "your"
        if user.role == Role.ADMIN:
            whose = "the registered"
        raise _bad(f"{name} is over none of {whose} fields; check its georeferencing "
                   "(CRS) or import the fields first")
    known = await flights_q.existing(conn, upload.sha256)
    if known is None:
        target = await asyncio.to_thread(image_store.place, upload.path, digest=upload.sha256,
                                         home=home, move=True)
        upload.path = None
        params = image_store.row_params(image=image, target=target, digest=upload.sha256,
                                        added_by=user.name, drone_id=drone, flight=flight,
                                        field_ids=covered, acquired_at=captured)
        async with conn.transaction():
            known = await flights_q.register(conn, params)
        if not known["existing"]:
            logger.info("image %d uploaded by %s: %s (%s, %d bytes, %d fields)", known["id"],
                        user.name, name[:80], source, upload.size, len(covered))
    body = {**known, "fields": mine, "status_url": flights_q.status_url(known["id"])}
    return JSONResponse(body, status_code=200 if known["existing"] else 202,
                        headers={"Location": body["status_url"]})


@router.get("/flights", responses={200: {"content": {"application/json": {"example": {
    "items": [_FLIGHT_EXAMPLE], "next": None}}}}})
async def list_flights(conn: Conn, user: CurrentUser, limit: Limit = 50, after: Cursor = None,
                       status: Annotated[Literal["pending", "processing", "done", "failed"]
                                         | None, Query()] = None):
    """Flights and scenes you may see (over your fields, or uploaded by you),
    newest first; ``fields`` counts the fields of yours each one holds."""
    access.require_role(user, *VIEWERS, action="seeing flights")
    items = await flights_q.flights(conn, user, after=after, limit=limit + 1, status=status)
    return page(items, limit)


@router.get("/flights/{image_id}", responses={200: {"content": {"application/json": {
    "example": {**_FLIGHT_EXAMPLE, "statistics": [{
        "field": "hirosaki-b01-03", "name": "弘前 3", "municipality": "Hirosaki",
        "acquired_on": "2026-08-20", "ndvi_mean": 0.71, "gndvi_mean": 0.58,
        "ndre_mean": 0.33, "valid_fraction": 0.98,
        "stats": {"ndvi_mean": 0.71, "ndvi_p10": 0.62, "ndvi_p90": 0.79},
        "harvest_class": 2, "harvest_colour": "#fdae61"}]}}}}})
async def flight_detail(conn: Conn, user: CurrentUser,
                        image_id: Annotated[int, Path(ge=1, le=MAX_CURSOR)]):
    """Processing status of one image (``pending``, ``processing``, ``done``,
    ``failed`` with its ``error``) and, once done, the statistics of each
    field of yours it covers."""
    access.require_role(user, *VIEWERS, action="seeing flights")
    detail = await flights_q.flight(conn, user, image_id)
    if detail is None:
        raise HTTPException(404, f"no flight {image_id}")
    return detail


def _field_id(field_id: str) -> str:
    if not FIELD_ID_RE.fullmatch(field_id):
        raise HTTPException(404, f"no field {field_id[:64]!r}")
    return field_id


@router.get("/fields/{field_id}/map", responses={200: {"content": {"application/json": {
    "example": {"field": "hirosaki-b01-03", "image": 42, "source": "drone-p4m",
                "acquired_on": "2026-08-20", "valid_fraction": 0.98,
                "means": {"ndvi": 0.71, "gndvi": 0.58, "ndre": 0.33},
                "harvest_class": 2, "harvest_colour": "#fdae61",
                "previews": {"ndvi": "/api/v1/fields/hirosaki-b01-03/map.png?index=ndvi"},
                "legend": {"colours": list(image_files.RAMP),
                           "ranges": {"ndvi": [0.0, 0.9]}}}}}}})
async def field_map(field_id: str, conn: Conn, user: CurrentUser,
                    as_of: Annotated[date | None, Query()] = None):
    """The latest drone or satellite map of a field: which image, when, the
    field's index means and harvest-timing class, and its PNG previews."""
    found = await flights_q.latest_field_map(conn, user, _field_id(field_id), as_of=as_of)
    if found is None:
        raise HTTPException(404, f"no map of field {field_id[:64]!r} yet")
    return found


@router.get("/fields/{field_id}/map.png", response_class=Response,
            responses={200: {"content": {"image/png": {}},
                             "description": "the index, red (low) to green (high); "
                                            "transparent outside the field"}})
async def field_map_png(request: Request, field_id: str, conn: Conn, user: CurrentUser,
                        settings: SettingsDep, index: Index = "ndvi",
                        as_of: Annotated[date | None, Query()] = None):
    """A PNG of one index over the field from its latest image."""
    try:
        found = await flights_q.field_map_png(conn, user, _field_id(field_id),
                                              home=settings.home, index=index, as_of=as_of)
    except imagery.ImageryError as exc:
        raise _bad(str(exc)[:500]) from None
    if found is None:
        raise HTTPException(404, f"no map of field {field_id[:64]!r} yet")
    png, tag = found
    etag = f'"{tag}"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(png, media_type="image/png", headers=headers)


@router.get("/spray-records", responses={200: {"content": {"application/json": {"example": {
    "items": [{"id": 981, "time": "2026-08-12T06:00:00+09:00", "drone": "agras-hirosaki",
               "field": "hirosaki-b01-03", "received_at": "2026-08-12T06:09:02+09:00",
               "product": "ブラシンフロアブル", "target": "blast",
               "started_at": "2026-08-12T06:00:00+09:00",
               "ended_at": "2026-08-12T06:08:40+09:00", "rate_l_per_10a": 0.8,
               "sprayed_area_m2": 2890.5, "volume_l": 231.2}],
    "next": None}}}}})
async def spray_records(conn: Conn, user: CurrentUser, limit: Limit = 100, after: Cursor = None,
                        field: Annotated[str | None, Query(max_length=64)] = None):
    """Drone spray records on the fields you see (officers: their region;
    farmers: their fields), newest first."""
    if user.role == Role.PLANNER:
        raise HTTPException(403, "spray records are one farm's; planners see the sprayed "
                                 "area per municipality at /api/v1/spray-summary")
    access.require_role(user, *SPRAY_VIEWERS, action="seeing spray records")
    if field is not None and not FIELD_ID_RE.fullmatch(field):
        return page([], limit)
    items = await sprays.records(conn, user, after=after, limit=limit + 1, field_id=field)
    return page(items, limit)


@router.get("/spray-summary", responses={200: {"content": {"application/json": {"example": {
    "min_farms": sprays.MIN_FARMS, "items": [
        {"municipality": "Hirosaki", "year": 2026, "flights": 412, "farms": 37,
         "fields": 206, "sprayed_area_m2": 598123.4, "sprayed_area_ha": 59.81}]}}}}})
async def spray_summary(conn: Conn, user: CurrentUser,
                        year: Annotated[int | None, Query(ge=1900, le=2200)] = None,
                        municipality: Annotated[str | None, Query(
                            min_length=1, max_length=100,
                            pattern=r"^[^\x00-\x1f\x7f]+$")] = None):
    """Sprayed area and flights per municipality and year (planners: every
    municipality; officers: their region); a municipality and year with
    fewer than ``min_farms`` farms sprayed is left out."""
    access.require_role(user, *SUMMARY_VIEWERS, action="the spray summary")
    items = await sprays.summary(conn, user, year=year, municipality=municipality)
    return {"min_farms": sprays.MIN_FARMS, "items": items}
