"""Fields (paddies) and their seasons: import from GeoJSON, SQL for fields,
one place.

A field is a paddy that stays; each import of it adds or updates the season
of its ``transplanted_on`` year (cultivar, transplanting date), so earlier
seasons stay as the field's history. The field's own ``cultivar`` and
``transplanted_on`` are those of its latest season.

Rows come from the platform's own GeoJSON (:func:`parse_features`) or from
the Ministry of Agriculture's field polygons with an assignment CSV
(``api/fude_polygons.py``). A row from a field polygon keeps the polygon's
uuid (``polygon_uuid``); its field id may be left out (``None``): a field
that holds the polygon already keeps its id, a new one takes the uuid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import orjson
import psycopg
import shapely
from psycopg import AsyncConnection
from psycopg.rows import class_row
from pyproj import Transformer
from shapely.geometry import mapping, shape

# JGD2011 / Japan Plane Rectangular CS X: the zone for Aomori (metres).
FIELD_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the fields table's CHECK
PLANE_CRS = "EPSG:6678"
_TO_PLANE = Transformer.from_crs("EPSG:4326", PLANE_CRS, always_xy=True)
REQUIRED = ("id", "name", "owner", "cultivar", "transplanted_on", "municipality")


class FieldImportError(ValueError):
    """The GeoJSON cannot be imported; the message names the feature and the fix."""


def geometry_columns(polygon) -> dict:
    """The stored form of a valid lon/lat (WGS84) polygon: GeoJSON, area in
    m2 (on the JGD2011 plane of Aomori) and centroid."""
    centroid = polygon.centroid
    return {
        "geometry": orjson.dumps(mapping(polygon)).decode(),
        "area_m2": shapely.transform(polygon, _TO_PLANE.transform, interleaved=False).area,
        "centroid_lon": centroid.x, "centroid_lat": centroid.y,
    }


def parse_features(data: dict) -> list[dict]:
    """Check a FeatureCollection of field polygons; returns rows to upsert."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise FieldImportError("expected a GeoJSON FeatureCollection")
    features = data.get("features") or []
    if not isinstance(features, list):
        raise FieldImportError("features must be a list of GeoJSON Features")
    rows = []
    for n, feature in enumerate(features):
        props = (feature.get("properties") if isinstance(feature, dict) else None) or {}
        if not isinstance(props, dict):
            raise FieldImportError(f"feature {n}: properties must be an object")
        where = f"feature {n} ({props.get('id', 'no id')})"
        missing = [k for k in REQUIRED if props.get(k) in (None, "")]
        if missing:
            raise FieldImportError(f"{where}: missing properties {', '.join(missing)}")
        if any("\x00" in str(props[k]) for k in REQUIRED):
            raise FieldImportError(f"{where}: a property contains a NUL character")
        if not FIELD_ID_RE.fullmatch(str(props["id"])):
            raise FieldImportError(f"{where}: id must be 1-64 letters, digits, _ or -")
        geometry = feature.get("geometry") or {}
        if not isinstance(geometry, dict) or geometry.get("type") != "Polygon":
            raise FieldImportError(f"{where}: geometry must be a Polygon")
        try:
            polygon = shape(geometry)
        except (ValueError, TypeError, AttributeError, IndexError, KeyError,
                shapely.errors.GEOSException) as exc:
            raise FieldImportError(f"{where}: bad polygon: {exc}") from None
        lon_min, lat_min, lon_max, lat_max = polygon.bounds
        if not (-180 <= lon_min <= lon_max <= 180 and -90 <= lat_min <= lat_max <= 90):
            raise FieldImportError(f"{where}: coordinates must be longitude, latitude (RFC 7946)")
        if not polygon.is_valid:
            raise FieldImportError(f"{where}: polygon is not valid (self-intersecting?)")
        try:
            planted = date.fromisoformat(str(props["transplanted_on"]))
        except ValueError:
            raise FieldImportError(f"{where}: transplanted_on must be an ISO date") from None
        if not 1900 <= planted.year <= 2200:
            raise FieldImportError(f"{where}: transplanted_on {planted} is not a season's date")
        rows.append({
            "id": str(props["id"]), "name": str(props["name"]), "owner": str(props["owner"]),
            "cultivar": str(props["cultivar"]), "transplanted_on": planted,
            "municipality": str(props["municipality"]), "polygon_uuid": None,
            **geometry_columns(polygon), "geometry": orjson.dumps(geometry).decode(),
        })
    if not rows:
        raise FieldImportError("the FeatureCollection has no features")
    return rows


@dataclass(frozen=True, slots=True)
class Season:
    field_id: str
    year: int
    cultivar: str
    transplanted_on: date


OWNERS_KNOWN = "SELECT name FROM users WHERE name = ANY(%s)"
FIELDS_OF_POLYGONS = ("SELECT polygon_uuid::text, id FROM fields "
                      "WHERE polygon_uuid = ANY(%s::uuid[])")
UPSERT_FIELD = """
    INSERT INTO fields (id, name, owner, cultivar, transplanted_on, municipality,
                        geometry, area_m2, centroid_lon, centroid_lat, polygon_uuid)
    VALUES (%(id)s, %(name)s, %(owner)s, %(cultivar)s, %(transplanted_on)s,
            %(municipality)s, %(geometry)s::jsonb, %(area_m2)s,
            %(centroid_lon)s, %(centroid_lat)s, %(polygon_uuid)s::uuid)
    ON CONFLICT (id) DO UPDATE SET
      name = excluded.name, owner = excluded.owner, cultivar = excluded.cultivar,
      transplanted_on = excluded.transplanted_on,
      municipality = excluded.municipality, geometry = excluded.geometry,
      area_m2 = excluded.area_m2, centroid_lon = excluded.centroid_lon,
      centroid_lat = excluded.centroid_lat,
      polygon_uuid = COALESCE(excluded.polygon_uuid, fields.polygon_uuid),
      updated_at = now()"""
UPSERT_SEASON = """
    INSERT INTO field_seasons (field_id, year, cultivar, transplanted_on)
    VALUES (%(id)s, %(year)s, %(cultivar)s, %(transplanted_on)s)
    ON CONFLICT (field_id, year) DO UPDATE SET
      cultivar = excluded.cultivar, transplanted_on = excluded.transplanted_on,
      updated_at = now()"""
# Importing an earlier season (history) must not replace the current one.
CURRENT_SEASON = """
    UPDATE fields f SET cultivar = s.cultivar, transplanted_on = s.transplanted_on
    FROM (SELECT DISTINCT ON (field_id) field_id, cultivar, transplanted_on
          FROM field_seasons WHERE field_id = ANY(%s)
          ORDER BY field_id, year DESC) s
    WHERE f.id = s.field_id"""


def _uuids(rows: list[dict]) -> list[str]:
    return [r["polygon_uuid"] for r in rows if r.get("polygon_uuid")]


def resolve_ids(rows: list[dict], holders: dict[str, str]) -> list[dict]:
    """Rows with their field ids: a polygon's field id given in the row, else
    the id of the field that holds the polygon (``holders``: uuid -> field
    id), else the polygon's uuid. A polygon that another field holds, or two
    rows for one field, are refused."""
    resolved, seen = [], {}
    for row in rows:
        uuid, given = row.get("polygon_uuid"), row.get("id")
        holder = holders.get(uuid) if uuid else None
        if given and holder and holder != given:
            raise FieldImportError(f"{row.get('where', f'field {given}')}: polygon {uuid} is "
                                   f"field {holder} already; leave field_id empty or write "
                                   f"{holder}")
        field_id = given or holder or uuid
        if not field_id:
            raise FieldImportError("a row has neither a field id nor a polygon uuid")
        if field_id in seen:
            raise FieldImportError(f"{row.get('where', f'field {field_id}')}: field {field_id} "
                                   f"is given twice (also {seen[field_id]}); one row a field")
        seen[field_id] = row.get("where", f"field {field_id}")
        resolved.append(row | {"id": field_id})
    return resolved


def _season_rows(rows: list[dict]) -> list[dict]:
    return [r | {"year": r["transplanted_on"].year} for r in rows]


def import_fields(conn: psycopg.Connection, rows: list[dict], *,
                  create_owners: bool = False) -> tuple[int, dict[str, str]]:
    """Insert or update fields and the season of each row's year, all or
    nothing; returns (count, tokens of owners created). ``rows`` may leave a
    polygon's field id out (see :func:`resolve_ids`)."""
    from agri.api.accounts import add_user

    owners = sorted({r["owner"] for r in rows})
    known = {r[0] for r in conn.execute(OWNERS_KNOWN, (owners,))}
    unknown = [o for o in owners if o not in known]
    created: dict[str, str] = {}
    if unknown and not create_owners:
        raise FieldImportError(f"owners are not users: {', '.join(unknown)}; create them with "
                               f"`agri users add --role farmer` or pass --create-owners")
    with conn.transaction():
        holders = dict(conn.execute(FIELDS_OF_POLYGONS, (_uuids(rows),)).fetchall())
        rows = resolve_ids(rows, holders)
        for owner in unknown:
            created[owner] = add_user(conn, name=owner, role="farmer").token
        with conn.cursor() as cur:
            cur.executemany(UPSERT_FIELD, rows)
            cur.executemany(UPSERT_SEASON, _season_rows(rows))
        conn.execute(CURRENT_SEASON, ([r["id"] for r in rows],))
    return len(rows), created


async def resolve_ids_async(conn: AsyncConnection, rows: list[dict]) -> list[dict]:
    """:func:`resolve_ids` against the fields stored now (call it in the
    transaction that imports)."""
    cur = await conn.execute(FIELDS_OF_POLYGONS, (_uuids(rows),))
    return resolve_ids(rows, dict(await cur.fetchall()))


async def import_fields_async(conn: AsyncConnection, rows: list[dict]) -> int:
    """:func:`import_fields` for the API, on rows whose ids are resolved: the
    owners must be users already (the API creates no users)."""
    owners = sorted({r["owner"] for r in rows})
    cur = await conn.execute(OWNERS_KNOWN, (owners,))
    known = {r[0] for r in await cur.fetchall()}
    unknown = [o for o in owners if o not in known]
    if unknown:
        raise FieldImportError(f"owners are not users: {', '.join(unknown)}; ask an "
                               f"administrator to create them (agri users add --role farmer)")
    async with conn.transaction():
        async with conn.cursor() as cur:
            await cur.executemany(UPSERT_FIELD, rows)
            await cur.executemany(UPSERT_SEASON, _season_rows(rows))
        await conn.execute(CURRENT_SEASON, ([r["id"] for r in rows],))
    return len(rows)


def seasons(conn: psycopg.Connection, field_id: str) -> list[Season]:
    """A field's seasons, the latest first."""
    with conn.cursor(row_factory=class_row(Season)) as cur:
        return cur.execute("SELECT field_id, year, cultivar, transplanted_on FROM field_seasons "
                           "WHERE field_id = %s ORDER BY year DESC", (field_id,)).fetchall()
