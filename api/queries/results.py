"""The analytics results of one field, as the analytics stored them: each kind
from its own table, the latest day computed for up to ``as_of``."""

from __future__ import annotations

from datetime import date

from psycopg import AsyncConnection
from psycopg.rows import dict_row


def _iso(value) -> str | None:
    """ISO 8601 of a date or time; a result read as JSON has it as text already."""
    return value if value is None or isinstance(value, str) else value.isoformat()


async def _one(conn: AsyncConnection, query: str, params: tuple) -> dict | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def _all(conn: AsyncConnection, query: str, params: tuple) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def seasons(conn: AsyncConnection, field_id: str) -> list[dict]:
    rows = await _all(conn, "SELECT year, cultivar, transplanted_on FROM field_seasons "
                      "WHERE field_id = %s ORDER BY year DESC", (field_id,))
    return [{"year": r["year"], "cultivar": r["cultivar"],
             "transplanted_on": _iso(r["transplanted_on"])} for r in rows]


_STAGE = ("SELECT * FROM field_stages WHERE field_id = %(f)s AND "
          "(%(d)s::date IS NULL OR computed_for <= %(d)s) ORDER BY computed_for DESC LIMIT 1")


async def stage(conn: AsyncConnection, field_id: str, as_of: date | None) -> dict | None:
    return _stage(await _one(conn, _STAGE, {"f": field_id, "d": as_of}))


def _stage(r: dict | None) -> dict | None:
    if r is None:
        return None
    return {"computed_for": _iso(r["computed_for"]), "dvi": round(r["dvi"], 3),
            "name": r["stage"],
            "heading": {"date": _iso(r["heading"]), "observed": r["heading_observed"]},
            "maturity": {"date": _iso(r["maturity"]), "observed": r["maturity_observed"]},
            "station": r["station_id"], "water_sensor": r["water_sensor_id"],
            "calibrated": r["calibrated"]}


_HARVEST = ("SELECT * FROM field_harvest_windows WHERE field_id = %(f)s AND "
            "(%(d)s::date IS NULL OR computed_for <= %(d)s) ORDER BY computed_for DESC LIMIT 1")


async def harvest_window(conn: AsyncConnection, field_id: str, as_of: date | None
                         ) -> dict | None:
    return _harvest(await _one(conn, _HARVEST, {"f": field_id, "d": as_of}))


def _harvest(r: dict | None) -> dict | None:
    if r is None:
        return None
    return {"computed_for": _iso(r["computed_for"]), "opens": _iso(r["opens"]),
            "closes": _iso(r["closes"]), "opens_cday": r["opens_cday"],
            "closes_cday": r["closes_cday"], "cday_to_date": r["cday_to_date"],
            "heat_adjusted": r["heat_adjusted"], "rule": r["rule"],
            "order_in_municipality": r["region_order"], "order_basis": r["order_basis"]}


_RISKS = ("SELECT kind, level, value, details, computed_for FROM field_risks r "
          "WHERE field_id = %(f)s AND computed_for = (SELECT max(computed_for) FROM field_risks "
          "WHERE field_id = %(f)s AND (%(d)s::date IS NULL OR computed_for <= %(d)s)) "
          "ORDER BY kind")


async def risks(conn: AsyncConnection, field_id: str, as_of: date | None) -> list[dict]:
    return _risks(await _all(conn, _RISKS, {"f": field_id, "d": as_of}))


def _risks(rows: list[dict]) -> list[dict]:
    return [{"kind": r["kind"], "level": r["level"], "value": r["value"],
             "details": r["details"], "computed_for": _iso(r["computed_for"])} for r in rows]


_WATER = ("SELECT s.*, b.low_m, b.high_m, b.phase FROM (SELECT * FROM field_water_status "
          "WHERE field_id = %(f)s AND (%(d)s::date IS NULL OR computed_for <= %(d)s) "
          "ORDER BY computed_for DESC LIMIT 1) s LEFT JOIN field_water_bands b "
          "ON b.field_id = s.field_id AND b.day = s.computed_for")


async def water(conn: AsyncConnection, field_id: str, as_of: date | None) -> dict | None:
    return _water(await _one(conn, _WATER, {"f": field_id, "d": as_of}))


def _water(r: dict | None) -> dict | None:
    if r is None:
        return None
    return {"computed_for": _iso(r["computed_for"]), "state": r["state"],
            "off_since": _iso(r["off_since"]), "off_hours": r["off_hours"],
            "share_inside": r["share_inside"], "level_m": r["latest_level_m"],
            "measured_at": _iso(r["latest_at"]), "device": r["device_id"],
            "band": None if r["low_m"] is None else {"low_m": r["low_m"], "high_m": r["high_m"],
                                                     "phase": r["phase"]}}


# The four above in one round trip (each row as JSON: dates and times as text).
_CURRENT = (f"SELECT (SELECT to_jsonb(x) FROM ({_STAGE}) x) AS stage, "
            f"(SELECT to_jsonb(x) FROM ({_HARVEST}) x) AS harvest, "
            f"(SELECT to_jsonb(x) FROM ({_WATER}) x) AS water, "
            f"(SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.kind), '[]') FROM ({_RISKS}) x) "
            f"AS risks")


async def current(conn: AsyncConnection, field_id: str, as_of: date | None) -> dict:
    """{"stage", "harvest_window", "water", "risks"} as the functions of each
    give them, read in one query."""
    r = await _one(conn, _CURRENT, {"f": field_id, "d": as_of})
    return {"stage": _stage(r["stage"]), "harvest_window": _harvest(r["harvest"]),
            "water": _water(r["water"]), "risks": _risks(r["risks"])}


async def current_states(conn: AsyncConnection, field_ids: list[str]
                         ) -> dict[str, tuple[str | None, str | None]]:
    """{field: (water state, stage name)} of the latest day computed, for the
    fields that have either: what a list of fields shows."""
    rows = await _all(
        conn, "SELECT f.id, w.state, s.stage FROM unnest(%s::text[]) AS f(id) "
        "LEFT JOIN LATERAL (SELECT state FROM field_water_status WHERE field_id = f.id "
        "ORDER BY computed_for DESC LIMIT 1) w ON true "
        "LEFT JOIN LATERAL (SELECT stage FROM field_stages WHERE field_id = f.id "
        "ORDER BY computed_for DESC LIMIT 1) s ON true", (field_ids,))
    return {r["id"]: (r["state"], r["stage"]) for r in rows}


async def index_stats(conn: AsyncConnection, field_id: str, as_of: date | None) -> dict | None:
    r = await _one(
        conn, "SELECT s.image_id, s.acquired_on, i.source, s.ndvi_mean, s.gndvi_mean, "
        "s.ndre_mean, s.valid_fraction, s.stats FROM field_index_stats s JOIN images i "
        "ON i.id = s.image_id WHERE s.field_id = %s AND s.valid_fraction > 0 AND "
        "(%s::date IS NULL OR s.acquired_on <= %s) ORDER BY s.acquired_on DESC NULLS LAST, "
        "s.image_id DESC LIMIT 1", (field_id, as_of, as_of))
    if r is None:
        return None
    return {"image": r["image_id"], "acquired_on": _iso(r["acquired_on"]), "source": r["source"],
            "valid_fraction": r["valid_fraction"], "stats": r["stats"]}


async def protein(conn: AsyncConnection, field_id: str, as_of: date | None) -> dict | None:
    r = await _one(
        conn, "SELECT p.protein_pct, p.class, p.image_id, p.year, m.cv_r2, m.cv_rmse, m.samples, "
        "i.acquired_at FROM field_protein p JOIN images i ON i.id = p.image_id "
        "LEFT JOIN protein_models m ON m.year = p.year AND m.image_id = p.image_id "
        "WHERE p.field_id = %s AND p.protein_pct IS NOT NULL AND (%s::date IS NULL OR "
        "i.acquired_at::date <= %s) ORDER BY i.acquired_at DESC NULLS LAST LIMIT 1",
        (field_id, as_of, as_of))
    if r is None:
        return None
    return {"protein_pct": round(r["protein_pct"], 2), "class": r["class"],
            "image": r["image_id"], "year": r["year"],
            "model": {"cv_r2": r["cv_r2"], "cv_rmse_pct": r["cv_rmse"], "samples": r["samples"]}}
