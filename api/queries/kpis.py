"""The plan office's indicators: counts by year, municipality and kind, of
what the platform observes itself and of the initiatives register, side by
side; and the register itself.

Years are Japanese fiscal years (年度, April to March, as the prefecture's
plans count) unless ``year_basis`` is "calendar"; days and times are taken in
Asia/Tokyo. What is counted:

- ``agritech_initiatives`` (register): initiatives registered by officers and
  the plan office that are active or ended, by the year they started;
- ``iot_prototypes`` (observed): devices registered as prototypes (the
  sandbox, docs/sandbox.md), by the year they were registered and the
  organisation that builds them (their kind);
- ``iot_prototypes_passed`` (observed): prototypes by the year of their first
  passing conformance report, and their organisation;
- ``fields_with_sensors`` (observed): fields with at least one device that
  reported in the year;
- ``drone_flights`` (observed): survey and spray flight records, by the
  municipality of the (first) field they served; spray records add their
  ``sprayed_area_m2`` (numbers from 0 to 10 km2; anything else is not summed);
- ``open_datasets`` (observed): datasets of the catalogue by the year the plan
  office first published them (prefecture-wide);
- ``open_data_apps`` (register): apps and services in the showcase, by the year
  they were registered (prefecture-wide).
"""

from __future__ import annotations

import csv
import io
from typing import Literal

from fastapi import HTTPException
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from agri.api.accounts import Role, User
from agri.api.queries import access
from agri.api.queries.open_data import (
    DATASETS,
    municipality_names,
    platform_municipality,
    safe_text,
)
from agri.clock import TIME_ZONE
from agri.devices.profiles import PROFILES

YearBasis = Literal["fiscal", "calendar"]

# The kinds of initiative the register knows, the one list: key -> (ja, en).
INITIATIVE_KINDS: dict[str, tuple[str, str]] = {
    "remote_sensing": ("リモートセンシング", "remote sensing"),
    "drone": ("ドローン", "drone"),
    "iot_sensor": ("IoTセンサー", "IoT sensor"),
    "water_management": ("水管理", "water management"),
    "data_platform": ("データ基盤", "data platform"),
    "other": ("その他", "other"),
}
INITIATIVE_STATUSES = ("planned", "active", "ended")
STATUS_LABELS = {"planned": "計画中", "active": "実施中", "ended": "終了"}

# Indicator key -> (ja, en, source). "register": what people record;
# "observed": what the platform sees itself.
INDICATORS: dict[str, tuple[str, str, str]] = {
    "agritech_initiatives": ("「農業×Tech：アグリテック」の取組数", "agri-tech initiatives",
                             "register"),
    "iot_prototypes": ("IoT関連試作品の数", "IoT prototypes", "observed"),
    "iot_prototypes_passed": ("適合確認に合格した試作品の数",
                              "prototypes that passed the conformance check", "observed"),
    "fields_with_sensors": ("センサーのある圃場数", "fields with sensors", "observed"),
    "drone_flights": ("ドローン飛行数", "drone flights", "observed"),
    "open_datasets": ("公開したオープンデータ数", "open datasets published", "observed"),
    "open_data_apps": ("オープンデータを利活用したアプリケーション・サービス数",
                       "apps and services built on the open data", "register"),
}
PREFECTURE_WIDE = frozenset({"open_datasets", "open_data_apps"})
SOURCE_LABELS = {"register": "登録簿", "observed": "プラットフォーム観測"}
FLIGHT_KINDS = {"survey": "空撮", "spray": "散布"}
MAX_SPRAYED_M2 = 10_000_000  # a record claiming more than 1,000 ha is not summed

VIEWERS = (Role.PLANNER, Role.OFFICER, Role.ADMIN)

NO_ORGANISATION = "（組織未設定）"


_scope = access.aggregate_region


def _year(expr: str, basis: YearBasis, *, day: bool = False) -> str:
    """SQL: the (fiscal) year of timestamptz ``expr`` in Asia/Tokyo, or of
    the date ``expr`` (``day``: a Tokyo day already)."""
    local = f"({expr})" if day else f"(({expr}) AT TIME ZONE '{TIME_ZONE}')"
    if basis == "fiscal":
        local = f"({local} - interval '3 months')"
    return f"extract(year FROM {local})::int"


def _first_day(year_sql: str, basis: YearBasis) -> str:
    """SQL: the first day of the (fiscal) year ``year_sql``."""
    return f"make_date({year_sql}, {4 if basis == 'fiscal' else 1}, 1)"


# The (profile, metric) pairs whose rollups say a device reported.
_REPORTING = [(p.name, m) for p in PROFILES.values() for m in p.metrics]


def _queries(basis: YearBasis) -> list[tuple[str, str]]:
    y = lambda expr, day=False: _year(expr, basis, day=day)  # noqa: E731
    area = ("CASE WHEN dr.kind = 'spray' AND jsonb_typeof(dr.body->'sprayed_area_m2') = 'number' "
            "AND (dr.body->>'sprayed_area_m2')::float8 BETWEEN 0 AND %(max_m2)s "
            "THEN (dr.body->>'sprayed_area_m2')::float8 END")
    return [
        ("agritech_initiatives", f"""
            SELECT {y('i.started_on', True)} AS year, i.municipality, i.kind, count(*) AS count,
                   NULL::float8 AS area_m2
            FROM initiatives i WHERE i.status <> 'planned' AND {_scope('i.municipality')}
            GROUP BY 1, 2, 3"""),
        ("iot_prototypes", f"""
            SELECT {y('d.created_at')} AS year, f.municipality, d.organisation AS kind,
                   count(*) AS count, NULL::float8 AS area_m2
            FROM devices d LEFT JOIN fields f ON f.id = d.field_id
            WHERE d.prototype AND {_scope('f.municipality')}
            GROUP BY 1, 2, 3"""),
        ("iot_prototypes_passed", f"""
            SELECT {y('p.first')} AS year, f.municipality, d.organisation AS kind,
                   count(*) AS count, NULL::float8 AS area_m2
            FROM devices d
            CROSS JOIN LATERAL (SELECT min(c.created_at) AS first FROM conformance_reports c
                                WHERE c.device_id = d.id AND c.passed) p
            LEFT JOIN fields f ON f.id = d.field_id
            WHERE d.prototype AND p.first IS NOT NULL AND {_scope('f.municipality')}
            GROUP BY 1, 2, 3"""),
        # Each (device, metric)'s first and last day (two index probes): it
        # reported in their years, and in a year between them if one probe
        # finds a day there. No scan of the rollups.
        ("fields_with_sensors", f"""
            SELECT y.year, f.municipality, NULL::text AS kind, count(DISTINCT f.id) AS count,
                   NULL::float8 AS area_m2
            FROM devices d
            JOIN unnest(%(pm_profiles)s::text[], %(pm_metrics)s::text[]) AS pm(profile, metric)
                ON pm.profile = d.profile
            JOIN fields f ON f.id = d.field_id
            CROSS JOIN LATERAL (
                SELECT {y('min(r.day)', True)} AS first, {y('max(r.day)', True)} AS last
                FROM readings_daily r
                WHERE r.device_id = d.id COLLATE "C" AND r.metric = pm.metric) span
            CROSS JOIN LATERAL generate_series(span.first, span.last) AS y(year)
            WHERE span.first IS NOT NULL AND {_scope('f.municipality')}
              AND (%(year)s::int IS NULL OR y.year = %(year)s)
              AND (y.year IN (span.first, span.last) OR EXISTS (
                SELECT 1 FROM readings_daily r
                WHERE r.device_id = d.id COLLATE "C" AND r.metric = pm.metric
                  AND r.day BETWEEN {_first_day('y.year', basis)}
                                AND {_first_day('y.year + 1', basis)} - 1))
            GROUP BY 1, 2"""),
        ("drone_flights", f"""
            SELECT {y('dr.time')} AS year, f.municipality, dr.kind, count(*) AS count,
                   sum({area}) AS area_m2
            FROM drone_records dr
            LEFT JOIN fields f ON f.id = coalesce(dr.field_id, dr.body->'fields'->>0)
            WHERE {_scope('f.municipality')}
            GROUP BY 1, 2, 3"""),
        ("open_datasets", f"""
            SELECT {y('o.published_at')} AS year, NULL::text AS municipality, o.name AS kind,
                   count(*) AS count, NULL::float8 AS area_m2
            FROM open_datasets o WHERE o.published_at IS NOT NULL GROUP BY 1, 2, 3"""),
        ("open_data_apps", f"""
            SELECT {y('a.registered_at')} AS year, NULL::text AS municipality,
                   NULL::text AS kind, count(*) AS count, NULL::float8 AS area_m2
            FROM showcase_apps a GROUP BY 1, 2, 3"""),
    ]


def _kind_label(indicator: str, kind: str | None) -> str:
    if indicator in ("iot_prototypes", "iot_prototypes_passed"):
        return kind or NO_ORGANISATION
    if kind is None:
        return ""
    if indicator == "agritech_initiatives":
        return INITIATIVE_KINDS.get(kind, (kind,))[0]
    if indicator == "drone_flights":
        return FLIGHT_KINDS.get(kind, kind)
    if indicator == "open_datasets":
        return DATASETS[kind].title[0] if kind in DATASETS else kind
    return kind


async def counts(conn: AsyncConnection, user: User, year_basis: YearBasis = "fiscal",
                 year: int | None = None, municipality: str | None = None) -> dict:
    """The indicators the user may see (planners and admins: all
    municipalities; officers: their region, plus the prefecture-wide open
    data counts). ``rows``: one per (year, municipality, indicator, kind);
    ``totals``: per (year, indicator) over municipalities and kinds;
    ``side_by_side``: per (year, municipality), the register's initiatives
    beside what the platform observed. Farmers and developers: 403."""
    access.require_role(user, *VIEWERS, action="the plan office's indicators")
    params = {**access.who(user), "max_m2": MAX_SPRAYED_M2, "year": year,
              "pm_profiles": [p for p, _m in _REPORTING], "pm_metrics": [m for _p, m in _REPORTING]}
    rows: list[dict] = []
    # Their cost estimates (a series of years per device) would start JIT
    # compilation, which takes longer than the queries themselves.
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SET LOCAL jit = off")
        for indicator, query in _queries(year_basis):
            await cur.execute(query, params)
            for r in await cur.fetchall():
                if year is not None and r["year"] != year:
                    continue
                if municipality is not None and r["municipality"] != municipality:
                    continue
                ja, en, source = INDICATORS[indicator]
                rows.append({
                    "year": r["year"], "municipality": r["municipality"],
                    "municipality_ja": municipality_names(r["municipality"])[1],
                    "indicator": indicator, "indicator_ja": ja, "source": source,
                    "kind": r["kind"], "kind_ja": _kind_label(indicator, r["kind"]),
                    "count": r["count"],
                    "sprayed_area_ha": (None if r["area_m2"] is None
                                        else round(r["area_m2"] / 10_000, 2))})
    order = list(INDICATORS)
    rows.sort(key=lambda r: (r["year"], r["municipality"] or "", order.index(r["indicator"]),
                             r["kind"] or ""))
    return {"year_basis": year_basis, "year_label": "年度" if year_basis == "fiscal" else "年",
            "rows": rows, "totals": _totals(rows), "side_by_side": _side_by_side(rows)}


def _totals(rows: list[dict]) -> list[dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        t = out.setdefault((r["year"], r["indicator"]), {
            "year": r["year"], "indicator": r["indicator"], "indicator_ja": r["indicator_ja"],
            "source": r["source"], "count": 0, "sprayed_area_ha": None})
        t["count"] += r["count"]
        if r["sprayed_area_ha"] is not None:
            t["sprayed_area_ha"] = round((t["sprayed_area_ha"] or 0) + r["sprayed_area_ha"], 2)
    order = list(INDICATORS)
    return sorted(out.values(), key=lambda t: (t["year"], order.index(t["indicator"])))


def _side_by_side(rows: list[dict]) -> list[dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        if r["indicator"] in PREFECTURE_WIDE:
            continue
        s = out.setdefault((r["year"], r["municipality"]), {
            "year": r["year"], "municipality": r["municipality"],
            "municipality_ja": r["municipality_ja"],
            "register": {"agritech_initiatives": 0},
            "observed": {"iot_prototypes": 0, "iot_prototypes_passed": 0,
                         "fields_with_sensors": 0, "drone_flights": 0,
                         "sprayed_area_ha": 0.0}})
        s[r["source"]][r["indicator"]] += r["count"]
        if r["sprayed_area_ha"] is not None:
            s["observed"]["sprayed_area_ha"] = round(
                s["observed"]["sprayed_area_ha"] + r["sprayed_area_ha"], 2)
    return sorted(out.values(), key=lambda s: (s["year"], s["municipality"] or ""))


def _municipality_label(row: dict) -> str:
    if row["municipality"] is not None:
        return safe_text(row["municipality_ja"])
    return "県全体" if row["indicator"] in PREFECTURE_WIDE else "（市町村未設定）"


def csv_bytes(result: dict) -> bytes:
    """The rows of ``counts(...)`` as a CSV that Japanese Excel opens as it
    should: UTF-8 with a BOM, CRLF line ends, Japanese headers."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([result["year_label"], "市町村", "指標", "種別", "出所", "件数",
                     "散布面積(ha)"])
    for r in result["rows"]:
        writer.writerow([r["year"], _municipality_label(r), r["indicator_ja"], r["kind_ja"],
                         SOURCE_LABELS[r["source"]], r["count"],
                         "" if r["sprayed_area_ha"] is None else f"{r['sprayed_area_ha']:.2f}"])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# -- the register ------------------------------------------------------------

KEEPERS = (Role.PLANNER, Role.OFFICER, Role.ADMIN)
_COLUMNS = ("id, name, kind, municipality, started_on, status, evidence, recorded_by, "
            "recorded_at, updated_by, updated_at")


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _initiative(r: dict) -> dict:
    return {"id": r["id"], "name": r["name"], "kind": r["kind"],
            "kind_ja": INITIATIVE_KINDS[r["kind"]][0] if r["kind"] in INITIATIVE_KINDS
            else r["kind"],
            "municipality": r["municipality"],
            "municipality_ja": municipality_names(r["municipality"])[1],
            "started_on": _iso(r["started_on"]),
            "status": r["status"], "evidence": r["evidence"],
            "recorded_by": r["recorded_by"], "recorded_at": _iso(r["recorded_at"]),
            "updated_by": r["updated_by"], "updated_at": _iso(r["updated_at"])}


def require_keeper(user: User) -> None:
    access.require_role(user, *KEEPERS, action="the initiatives register")


def may_keep(user: User, municipality: str) -> bool:
    """The user may record initiatives of ``municipality``: planners and
    admins everywhere, officers in their region."""
    return user.role in (Role.PLANNER, Role.ADMIN) or (
        user.role == Role.OFFICER and municipality in user.regions)


async def initiatives(conn: AsyncConnection, user: User, *, cursor: int | None = None,
                      limit: int = 100, municipality: str | None = None,
                      kind: str | None = None, status: str | None = None) -> list[dict]:
    """Up to ``limit + 1`` initiatives the user may see, newest first (feed
    to pagination.page)."""
    require_keeper(user)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLUMNS} FROM initiatives i WHERE {_scope('i.municipality')} "
            "AND (%(cursor)s::bigint IS NULL OR i.id < %(cursor)s) "
            "AND (%(m)s::text IS NULL OR i.municipality = %(m)s) "
            "AND (%(kind)s::text IS NULL OR i.kind = %(kind)s) "
            "AND (%(status)s::text IS NULL OR i.status = %(status)s) "
            "ORDER BY i.id DESC LIMIT %(limit)s",
            {**access.who(user), "cursor": cursor, "m": municipality, "kind": kind,
             "status": status, "limit": limit + 1})
        return [_initiative(r) for r in await cur.fetchall()]


async def initiative(conn: AsyncConnection, user: User, initiative_id: int) -> dict | None:
    """One initiative the user may see, or None."""
    require_keeper(user)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM initiatives i WHERE i.id = %(id)s "
                          f"AND {_scope('i.municipality')}",
                          {**access.who(user), "id": initiative_id})
        r = await cur.fetchone()
    return None if r is None else _initiative(r)


async def _municipality(conn: AsyncConnection, user: User, name: str) -> str:
    """The platform's name of ``name``; 422 when unknown, 403 when outside
    the officer's region."""
    found = await platform_municipality(conn, name)
    if found is None:
        raise HTTPException(422, f"unknown municipality {name[:100]!r}: use the platform's name "
                                 f"(e.g. Hirosaki) or the Japanese one (弘前市)")
    if not may_keep(user, found):
        raise HTTPException(403, f"officers record initiatives of their own region "
                                 f"({', '.join(user.regions) or 'none'}); ask the plan office "
                                 f"to record one in {found!r}")
    return found


EDITABLE = ("name", "kind", "municipality", "started_on", "status", "evidence")


async def add_initiative(conn: AsyncConnection, user: User, values: dict) -> dict:
    """Record an initiative (``values``: the EDITABLE ones, checked for
    type by the caller); who and when are the caller and now. 403 for a role
    that keeps no register or a municipality outside an officer's region,
    422 for an unknown municipality."""
    require_keeper(user)
    values = {k: values[k] for k in EDITABLE}
    values["municipality"] = await _municipality(conn, user, values["municipality"])
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"INSERT INTO initiatives (name, kind, municipality, started_on, status, evidence, "
            f"recorded_by, updated_by) VALUES (%(name)s, %(kind)s, %(municipality)s, "
            f"%(started_on)s, %(status)s, %(evidence)s, %(user)s, %(user)s) "
            f"RETURNING {_COLUMNS}", {**values, "user": user.name})
        return _initiative(await cur.fetchone())


async def change_initiative(conn: AsyncConnection, user: User, initiative_id: int,
                            changes: dict) -> dict:
    """Apply ``changes`` (some of the EDITABLE values; one left out stays) to
    an initiative the user may see (404 otherwise; 422 for a value set to
    None)."""
    if await initiative(conn, user, initiative_id) is None:
        raise HTTPException(404, f"no initiative {initiative_id}")
    changes = {k: v for k, v in changes.items() if k in EDITABLE}
    for key, value in changes.items():
        if value is None:
            raise HTTPException(422, f"{key} cannot be emptied; leave it out to keep it")
    if "municipality" in changes:
        changes["municipality"] = await _municipality(conn, user, changes["municipality"])
    sets = "".join(f"{k} = %({k})s, " for k in changes)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"UPDATE initiatives SET {sets}updated_by = %(user)s, updated_at = now() "
            f"WHERE id = %(id)s RETURNING {_COLUMNS}",
            {**changes, "user": user.name, "id": initiative_id})
        return _initiative(await cur.fetchone())
