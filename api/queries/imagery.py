"""Flights and scenes: the images registered for processing, who may see
them, their per-field statistics, and the latest map of a field.

An image is seen by whoever sees one of its fields (the fields its footprint
overlapped when uploaded, and those the analytics found in it), by the user
who uploaded it, and by admins; its statistics only for the fields the user
sees. Planners see no image (a flight is one farm's).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import date
from pathlib import Path

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from shapely.geometry import shape

from agri.analytics import image_store
from agri.api import image_files
from agri.api.accounts import User
from agri.api.queries.access import FIELD_OWNED, FIELD_VISIBLE, IMAGE_FIELDS, IMAGE_VISIBLE, who

logger = logging.getLogger(__name__)

PREVIEWS_DIR = "previews"
CENTROID_MARGIN_DEG = 0.02  # candidate fields: centroid this far outside the footprint's box
STATUSES = ("pending", "processing", "done", "failed")



def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def status_url(image_id: int) -> str:
    return f"/api/v1/flights/{image_id}"


def _item(r: dict, user: User) -> dict:
    mine = str(user.role) in ("admin", "officer") or r["added_by"] == user.name
    return {"id": r["id"], "source": r["source"], "status": r["status"],
            "error": r["error"], "acquired_at": _iso(r["acquired_at"]),
            "uploaded_at": _iso(r["created_at"]), "processed_at": _iso(r["processed_at"]),
            "drone": r["drone_id"], "flight": r["flight"],
            "uploaded_by": r["added_by"] if mine else None,
            "fields": r["fields"], "status_url": status_url(r["id"])}


_SELECT = f"""SELECT i.id, i.source, i.status, i.error, i.acquired_at, i.created_at,
    i.processed_at, i.drone_id, i.flight, i.added_by,
    (SELECT count(*) FROM fields f WHERE f.id = ANY{IMAGE_FIELDS}
     AND {FIELD_VISIBLE}) AS fields
FROM images i WHERE {IMAGE_VISIBLE}"""


async def flights(conn: AsyncConnection, user: User, *, after: int | None, limit: int,
                  status: str | None = None) -> list[dict]:
    """The images the user may see, newest first (``limit`` + 1 for the page)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{_SELECT} AND (%(after)s::bigint IS NULL OR i.id < %(after)s) "
            "AND (%(status)s::text IS NULL OR i.status = %(status)s) "
            "ORDER BY i.id DESC LIMIT %(limit)s",
            {"after": after, "limit": limit, "status": status, **who(user)})
        return [_item(r, user) for r in await cur.fetchall()]


async def flight(conn: AsyncConnection, user: User, image_id: int) -> dict | None:
    """One image with its processing status and the statistics of each field
    the user sees; None when the user may not see it."""
    params = {"id": image_id, **who(user)}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{_SELECT} AND i.id = %(id)s", params)
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(
            f"SELECT s.field_id, f.name, f.municipality, s.acquired_on, s.ndvi_mean, "
            f"s.gndvi_mean, s.ndre_mean, s.valid_fraction, s.stats, m.class AS maturity_class, "
            f"m.colour AS maturity_colour FROM field_index_stats s "
            f"JOIN fields f ON f.id = s.field_id "
            f"LEFT JOIN field_maturity m ON m.image_id = s.image_id AND m.field_id = s.field_id "
            f"WHERE s.image_id = %(id)s AND s.valid_fraction > 0 AND {FIELD_VISIBLE} "
            f"ORDER BY s.field_id", params)
        stats = await cur.fetchall()
    detail = _item(row, user)
    detail["statistics"] = [
        {"field": s["field_id"], "name": s["name"], "municipality": s["municipality"],
         "acquired_on": _iso(s["acquired_on"]), "ndvi_mean": s["ndvi_mean"],
         "gndvi_mean": s["gndvi_mean"], "ndre_mean": s["ndre_mean"],
         "valid_fraction": s["valid_fraction"], "stats": s["stats"],
         "harvest_class": s["maturity_class"], "harvest_colour": s["maturity_colour"]}
        for s in stats]
    return detail


async def covered_fields(conn: AsyncConnection, outline: dict) -> list[str]:
    """Registered fields whose polygon overlaps ``outline`` (GeoJSON, lon/lat)."""
    area = shape(outline)
    west, south, east, north = area.bounds
    m = CENTROID_MARGIN_DEG
    cur = await conn.execute(
        "SELECT id, geometry FROM fields WHERE centroid_lon BETWEEN %s AND %s "
        "AND centroid_lat BETWEEN %s AND %s ORDER BY id",
        (west - m, east + m, south - m, north + m))
    hits = []
    for fid, geometry in await cur.fetchall():
        try:
            if shape(geometry).intersects(area):
                hits.append(fid)
        except (ValueError, TypeError, AttributeError, KeyError):
            logger.warning("field %s has a geometry shapely cannot read", fid)
    return hits


async def uploadable(conn: AsyncConnection, user: User, field_ids: list[str]) -> list[str]:
    """Those of ``field_ids`` the user may upload imagery of: fields they may
    change (an officer's region, a farmer's own fields; admins all)."""
    cur = await conn.execute(
        f"SELECT f.id FROM fields f WHERE f.id = ANY(%(ids)s) AND {FIELD_OWNED} ORDER BY f.id",
        {"ids": field_ids, **who(user)})
    return [r[0] for r in await cur.fetchall()]


async def register(conn: AsyncConnection, params: dict) -> dict:
    """Insert the image as pending (``image_store.INSERT_IMAGE``, the row the
    CLI writes too) unless the same file is registered; in the caller's
    transaction."""
    cur = await conn.execute(image_store.INSERT_IMAGE, params)
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute(image_store.FIND_IMAGE, params)
        return image_store.as_dict(await cur.fetchone(), existing=True)
    return image_store.as_dict(row, existing=False)


async def existing(conn: AsyncConnection, digest: str) -> dict | None:
    cur = await conn.execute(image_store.FIND_IMAGE, {"sha256": digest})
    row = await cur.fetchone()
    return None if row is None else image_store.as_dict(row, existing=True)


async def _latest(conn: AsyncConnection, field_id: str, as_of: date | None) -> dict | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT s.image_id, s.acquired_on, s.ndvi_mean, s.gndvi_mean, s.ndre_mean, "
            "s.valid_fraction, i.source, i.path, i.acquired_at, m.class AS harvest_class, "
            "m.colour AS harvest_colour FROM field_index_stats s JOIN images i "
            "ON i.id = s.image_id LEFT JOIN field_maturity m ON m.image_id = s.image_id "
            "AND m.field_id = s.field_id WHERE s.field_id = %(field)s AND s.valid_fraction > 0 "
            "AND i.status = 'done' AND (%(as_of)s::date IS NULL OR s.acquired_on <= %(as_of)s) "
            "ORDER BY s.acquired_on DESC NULLS LAST, s.image_id DESC LIMIT 1",
            {"field": field_id, "as_of": as_of})
        return await cur.fetchone()


async def _visible_geometry(conn: AsyncConnection, user: User, field_id: str):
    cur = await conn.execute(
        f"SELECT f.geometry FROM fields f WHERE f.id = %(id)s AND {FIELD_VISIBLE}",
        {"id": field_id, **who(user)})
    row = await cur.fetchone()
    return None if row is None else row[0]


def preview_url(field_id: str, index: str = "ndvi") -> str:
    return f"/api/v1/fields/{field_id}/map.png?index={index}"


async def latest_field_map(conn: AsyncConnection, user: User, field_id: str, *,
                           as_of: date | None = None, seen: bool = False) -> dict | None:
    """The latest processed image of a field the user sees: its source and
    date, the field's index means and harvest-timing class, and where its
    PNG preview is; None when the field is not visible or has no image.
    ``seen``: the caller has found the field visible to the user already."""
    if not seen and await _visible_geometry(conn, user, field_id) is None:
        return None
    r = await _latest(conn, field_id, as_of)
    if r is None:
        return None
    indices = [i for i in image_files.PREVIEW_RANGES if r[f"{i}_mean"] is not None]
    return {"field": field_id, "image": r["image_id"], "source": r["source"],
            "acquired_on": _iso(r["acquired_on"]), "valid_fraction": r["valid_fraction"],
            "means": {i: r[f"{i}_mean"] for i in image_files.PREVIEW_RANGES},
            "harvest_class": r["harvest_class"], "harvest_colour": r["harvest_colour"],
            "previews": {i: preview_url(field_id, i) for i in indices},
            "legend": {"colours": list(image_files.RAMP),
                       "ranges": {i: list(v) for i, v in image_files.PREVIEW_RANGES.items()}}}


async def field_map_png(conn: AsyncConnection, user: User, field_id: str, *, home: Path,
                        index: str = "ndvi", as_of: date | None = None
                        ) -> tuple[bytes, str] | None:
    """(PNG, ETag) of ``index`` over a visible field from its latest image,
    rendered once per image, field outline and index and then read from
    ``home``/previews; None when there is nothing to show. ImageryError when
    that image has no such index."""
    geometry = await _visible_geometry(conn, user, field_id)
    if geometry is None:
        return None
    r = await _latest(conn, field_id, as_of)
    if r is None:
        return None
    outline = hashlib.sha256(orjson.dumps(geometry, option=orjson.OPT_SORT_KEYS)).hexdigest()
    tag = f"{r['image_id']}-{field_id}-{index}-{outline[:16]}"
    cached = Path(home).resolve() / PREVIEWS_DIR / f"{tag}.png"
    if cached.exists():
        return cached.read_bytes(), tag
    png = await asyncio.to_thread(image_files.field_png, Path(r["path"]), source=r["source"],
                                  geometry=geometry, index=index)
    if png is None:
        return None
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{id(png)}.part")
    partial.write_bytes(png)
    partial.replace(cached)
    return png, tag
