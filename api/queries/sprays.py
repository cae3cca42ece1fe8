"""Drone spray records (``drone_records`` of kind spray, as the drones sent
them over MQTT): one per flight, for the fields the user sees; and for the
plan office the sprayed area per municipality and year, with no farm
identifiable (a municipality and year with fewer than MIN_FARMS farms
sprayed is left out, the open data's rule).

The record's body is what the drone sent; the values are taken only when
they have the expected type (text, a number), else they are null.
"""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from agri.api.accounts import User
from agri.api.queries.access import DRONE_RECORD_VISIBLE, aggregate_region, who
from agri.api.queries.open_data import MIN_FARMS  # smallest group an aggregate may show
from agri.clock import TZ

MAX_TEXT = 200  # characters of a text value of a record
MAX_AREA_M2 = 1e7  # one flight's sprayed area above this is not counted (10 km2)
TEXT_KEYS = ("product", "target", "started_at", "ended_at")
NUMBER_KEYS = ("rate_l_per_10a", "sprayed_area_m2", "volume_l")

# The record's field (or, without one, any of the fields it names) is visible.

_AREA = ("CASE WHEN jsonb_typeof(r.body->'sprayed_area_m2') = 'number' "
         "AND (r.body->>'sprayed_area_m2')::numeric BETWEEN 0 AND %(max_area)s "
         "THEN (r.body->>'sprayed_area_m2')::numeric END")


def _value(body: dict, key: str, kind: type):
    value = body.get(key) if isinstance(body, dict) else None
    if kind is str:
        return value[:MAX_TEXT] if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


async def records(conn: AsyncConnection, user: User, *, after: int | None, limit: int,
                  field_id: str | None = None) -> list[dict]:
    """Spray records on the fields the user sees, newest first (``limit`` + 1)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT r.id, r.drone_id, r.time, r.field_id, r.body, r.received_at "
            f"FROM drone_records r WHERE r.kind = 'spray' AND {DRONE_RECORD_VISIBLE} "
            f"AND (%(after)s::bigint IS NULL OR r.id < %(after)s) "
            f"AND (%(field)s::text IS NULL OR r.field_id = %(field)s) "
            f"ORDER BY r.id DESC LIMIT %(limit)s",
            {"after": after, "limit": limit, "field": field_id, **who(user)})
        rows = await cur.fetchall()
    items = []
    for r in rows:
        body = r["body"]
        item = {"id": r["id"], "time": r["time"].astimezone(TZ).isoformat(),
                "drone": r["drone_id"], "field": r["field_id"],
                "received_at": r["received_at"].astimezone(TZ).isoformat()}
        item |= {k: _value(body, k, str) for k in TEXT_KEYS}
        item |= {k: _value(body, k, float) for k in NUMBER_KEYS}
        items.append(item)
    return items


async def summary(conn: AsyncConnection, user: User, *, year: int | None = None,
                  municipality: str | None = None) -> list[dict]:
    """Sprayed area and flights per municipality and year (Asia/Tokyo), for
    the municipalities the user oversees (planners: all), cells of fewer than
    MIN_FARMS farms left out."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT f.municipality, extract(year FROM r.time AT TIME ZONE %(tz)s)::int "
            f"AS year, count(*) AS flights, count(DISTINCT coalesce(f.owner, f.id)) AS farms, "
            f"count(DISTINCT f.id) AS fields, coalesce(sum({_AREA}), 0)::float8 AS area_m2 "
            f"FROM drone_records r JOIN fields f ON f.id = r.field_id "
            f"WHERE r.kind = 'spray' AND {aggregate_region('f.municipality')} "
            f"AND (%(year)s::int IS NULL OR extract(year FROM r.time AT TIME ZONE %(tz)s) "
            f"= %(year)s) AND (%(municipality)s::text IS NULL OR f.municipality = "
            f"%(municipality)s) GROUP BY 1, 2 "
            f"HAVING count(DISTINCT coalesce(f.owner, f.id)) >= %(min)s "
            f"ORDER BY 2 DESC, 1",
            {"tz": TZ.key, "year": year, "municipality": municipality, "min": MIN_FARMS,
             "max_area": MAX_AREA_M2, **who(user)})
        rows = await cur.fetchall()
    return [{"municipality": r["municipality"], "year": r["year"], "flights": r["flights"],
             "farms": r["farms"], "fields": r["fields"],
             "sprayed_area_m2": round(r["area_m2"], 1),
             "sprayed_area_ha": round(r["area_m2"] / 10_000, 2)} for r in rows]
