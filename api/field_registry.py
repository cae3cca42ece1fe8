"""Fields (paddies) and their seasons: import from GeoJSON, SQL for fields,
one place.

A field is a paddy that stays; each import of it adds or updates the season
of its ``transplanted_on`` year (cultivar, transplanting date), so earlier
seasons stay as the field's history. The field's own ``cultivar`` and
``transplanted_on`` are those of its latest season.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import orjson
import psycopg
import shapely
from psycopg.rows import class_row
from pyproj import Transformer
from shapely.geometry import shape

# JGD2011 / Japan Plane Rectangular CS X: the zone for Aomori (metres).
FIELD_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the fields table's CHECK
PLANE_CRS = "EPSG:6678"
_TO_PLANE = Transformer.from_crs("EPSG:4326", PLANE_CRS, always_xy=True)
REQUIRED = ("id", "name", "owner", "cultivar", "transplanted_on", "municipality")


class FieldImportError(ValueError):
    """The GeoJSON cannot be imported; the message names the feature and the fix."""


def parse_features(data: dict) -> list[dict]:
    """Check a FeatureCollection of field polygons; returns rows to upsert."""
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise FieldImportError("expected a GeoJSON FeatureCollection")
    rows = []
    for n, feature in enumerate(data.get("features") or []):
        props = feature.get("properties") or {}
        where = f"feature {n} ({props.get('id', 'no id')})"
        missing = [k for k in REQUIRED if props.get(k) in (None, "")]
        if missing:
            raise FieldImportError(f"{where}: missing properties {', '.join(missing)}")
        geometry = feature.get("geometry") or {}
        if geometry.get("type") != "Polygon":
            raise FieldImportError(f"{where}: geometry must be a Polygon")
        try:
            polygon = shape(geometry)
        except (ValueError, TypeError, AttributeError) as exc:
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
        centroid = polygon.centroid
        rows.append({
            "id": str(props["id"]), "name": str(props["name"]), "owner": str(props["owner"]),
            "cultivar": str(props["cultivar"]), "transplanted_on": planted,
            "municipality": str(props["municipality"]),
            "geometry": orjson.dumps(geometry).decode(),
            "area_m2": shapely.transform(polygon, _TO_PLANE.transform, interleaved=False).area,
            "centroid_lon": centroid.x, "centroid_lat": centroid.y,
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


def import_fields(conn: psycopg.Connection, rows: list[dict], *,
                  create_owners: bool = False) -> tuple[int, dict[str, str]]:
    """Insert or update fields and the season of each row's year; returns
    (count, tokens of owners created)."""
    from agri.api.accounts import add_user

    owners = sorted({r["owner"] for r in rows})
    known = {r[0] for r in conn.execute("SELECT name FROM users WHERE name = ANY(%s)",
                                        (owners,))}
    unknown = [o for o in owners if o not in known]
    created: dict[str, str] = {}
    if unknown and not create_owners:
        raise FieldImportError(f"owners are not users: {', '.join(unknown)}; create them with "
                               f"`agri users add --role farmer` or pass --create-owners")
    with conn.transaction():
        for owner in unknown:
            created[owner] = add_user(conn, name=owner, role="farmer").token
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO fields (id, name, owner, cultivar, transplanted_on, municipality,
                                       geometry, area_m2, centroid_lon, centroid_lat)
                   VALUES (%(id)s, %(name)s, %(owner)s, %(cultivar)s, %(transplanted_on)s,
                           %(municipality)s, %(geometry)s::jsonb, %(area_m2)s,
                           %(centroid_lon)s, %(centroid_lat)s)
                   ON CONFLICT (id) DO UPDATE SET
                     name = excluded.name, owner = excluded.owner, cultivar = excluded.cultivar,
                     transplanted_on = excluded.transplanted_on,
                     municipality = excluded.municipality, geometry = excluded.geometry,
                     area_m2 = excluded.area_m2, centroid_lon = excluded.centroid_lon,
                     centroid_lat = excluded.centroid_lat, updated_at = now()""", rows)
            cur.executemany(
                """INSERT INTO field_seasons (field_id, year, cultivar, transplanted_on)
                   VALUES (%(id)s, %(year)s, %(cultivar)s, %(transplanted_on)s)
                   ON CONFLICT (field_id, year) DO UPDATE SET
                     cultivar = excluded.cultivar, transplanted_on = excluded.transplanted_on,
                     updated_at = now()""",
                [r | {"year": r["transplanted_on"].year} for r in rows])
        # Importing an earlier season (history) must not replace the current one.
        conn.execute(
            """UPDATE fields f SET cultivar = s.cultivar, transplanted_on = s.transplanted_on
               FROM (SELECT DISTINCT ON (field_id) field_id, cultivar, transplanted_on
                     FROM field_seasons WHERE field_id = ANY(%s)
                     ORDER BY field_id, year DESC) s
               WHERE f.id = s.field_id""", ([r["id"] for r in rows],))
    return len(rows), created


def seasons(conn: psycopg.Connection, field_id: str) -> list[Season]:
    """A field's seasons, the latest first."""
    with conn.cursor(row_factory=class_row(Season)) as cur:
        return cur.execute("SELECT field_id, year, cultivar, transplanted_on FROM field_seasons "
                           "WHERE field_id = %s ORDER BY year DESC", (field_id,)).fetchall()
