"""Importing fields through the API: the platform's GeoJSON, or the Ministry's
field polygons (筆ポリゴン) with the CSV that assigns them (see
``api/fude_polygons.py``). Admins and officers only; an officer imports only
into their region's municipalities and changes only fields there. All or
nothing: a bad row or polygon imports nothing, and the error names it."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import psycopg
from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool

from agri.api.accounts import Role
from agri.api.deps import CurrentUser, PrimaryConn
from agri.api.field_registry import FieldImportError, import_fields_async, resolve_ids_async
from agri.api.fude_polygons import CSV_HEADER, parse_upload
from agri.api.queries import access

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["fields"])

MAX_GEOJSON_BYTES = 100 * 1024 * 1024  # a municipality's field polygons (40,000: 57 MB)
MAX_CSV_BYTES = 10 * 1024 * 1024
MAX_DETAIL = 1000  # characters of an error kept in the answer
CHUNK = 1024 * 1024

EXAMPLE = {
    "imported": 2, "format": "fude", "crs": "EPSG:6668", "polygons": 5, "paddies": 3,
    "assigned": 3, "paddies_not_assigned": 1, "assigned_not_paddy": 1,
    "assigned_not_paddy_uuids": ["e941aa79-e6ed-4f80-b96d-3bc4685ca8af"],
    "latitude_first": 0,
}


async def _read(upload: UploadFile, limit: int, what: str) -> bytes:
    chunks, size = [], 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"{what} is larger than {limit // (1024 * 1024)} MB; split "
                                     f"it or import it with agri fields import")
        chunks.append(chunk)
    return b"".join(chunks)


async def _check_scope(conn, user, rows: list[dict]) -> None:
    """403 unless every field lies, and every field it changes lay, in the
    user's region (admins: anywhere)."""
    who = access.who(user)
    municipalities = sorted({r["municipality"] for r in rows})
    cur = await conn.execute(
        f"SELECT m FROM unnest(%(ms)s::text[]) AS m WHERE NOT {access.in_region('m')}",
        {"ms": municipalities, **who})
    outside = {m for (m,) in await cur.fetchall()}
    if outside:
        first = next(r for r in rows if r["municipality"] in outside)
        raise HTTPException(403, f"{first.get('where', 'field ' + first['id'])} lies in "
                                 f"{first['municipality']}, outside your region; nothing was "
                                 f"imported (remove such rows, or ask that officer)")
    cur = await conn.execute(
        f"SELECT f.id FROM fields f WHERE f.id = ANY(%(ids)s) AND NOT {access.FIELD_OWNED} "
        f"ORDER BY f.id LIMIT 1", {"ids": [r["id"] for r in rows], **who})
    taken = await cur.fetchone()
    if taken is not None:
        raise HTTPException(409, f"field id {taken[0]} belongs to a field you may not change; "
                                 f"give that row another field_id; nothing was imported")


@router.post("/fields/import", responses={
    200: {"description": "what was imported and what the file held",
          "content": {"application/json": {"example": EXAMPLE}}},
    403: {"description": "not an admin or officer, or a field outside the officer's region"},
    409: {"description": "a field id that belongs to a field the user may not change"},
    413: {"description": "a file over the size limit"},
    422: {"description": "a bad CSV row or polygon (named); nothing was imported"}})
async def import_fields_route(
    user: CurrentUser, conn: PrimaryConn,
    file: Annotated[UploadFile, File(description="GeoJSON FeatureCollection: the platform's "
                                                 "own, or the Ministry's field polygons")],
    assign: Annotated[UploadFile | None, File(description=f"for field polygons: the CSV "
                                                          f"({CSV_HEADER})")] = None,
    format: Annotated[Literal["auto", "platform", "fude"],
                      Form(description="default: recognised by the properties")] = "auto",
):
    """Import fields, all or nothing. Field polygons (筆ポリゴン): only the
    paddies (land_type 100) that the CSV assigns become fields, each keeping
    its polygon_uuid; the other polygons are counted in the answer. Owners
    must be users already."""
    access.require_role(user, Role.ADMIN, Role.OFFICER, action="importing fields")
    geojson = await _read(file, MAX_GEOJSON_BYTES, "the GeoJSON")
    csv = await _read(assign, MAX_CSV_BYTES, "the CSV") if assign is not None else None
    try:
        parsed = await run_in_threadpool(parse_upload, geojson, csv, format)
        async with conn.transaction():
            rows = await resolve_ids_async(conn, parsed.rows)
            await _check_scope(conn, user, rows)
            count = await import_fields_async(conn, rows)
    except FieldImportError as exc:
        raise HTTPException(422, str(exc)[:MAX_DETAIL]) from None
    except psycopg.errors.IntegrityError as exc:  # another import of the same fields at once
        logger.warning("field import by %s conflicted: %s", user.name, exc)
        raise HTTPException(409, "another import changed these fields at the same time; "
                                 "send the file again") from None
    logger.info("%s imported %d fields (%s)", user.name, count, parsed.report.get("format"))
    return {"imported": count, **parsed.report}
