"""Open data the plan office publishes under the Public Data License 1.0
(公共データ利用規約 第1.0版, compatible with CC BY 4.0): the datasets, their
catalogue (DCAT in JSON-LD) and their rows.

No farm is identifiable in what is published:

- field conditions: a (day, municipality, metric) cell whose devices sit on
  fields of fewer than ``MIN_FARMS`` farms (distinct owners; a field without
  an owner counts as a farm of its own) is suppressed: its values and counts
  are null and ``suppressed`` is true. No total over municipalities is
  published, so a suppressed cell cannot be recovered by subtraction;
- harvest forecast: the same rule for a (year, municipality) cell;
- weather: the stations stand on farmers' fields, so no station id and no
  position finer than the municipality is published; the daily values of a
  municipality are those of its stations together, with how many there were.
  Air temperature, rain or wind at a municipality's station do not tell who
  farms there or how, so weather cells are not suppressed;
- positions (GeoJSON): a municipality is a point, the mean of its fields'
  centres rounded to 0.01 degree (about 1 km), and null when the municipality
  has fewer than ``MIN_FARMS`` farms on the platform.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from agri.api.accounts import Role, User
from agri.api.municipalities import AOMORI
from agri.api.queries import access
from agri.devices.profiles import METRICS, PROFILES

MIN_FARMS = 3
MAX_DAYS = 400  # longest range one download covers
PLACE_DECIMALS = 2

LICENSE_URL = "https://www.digital.go.jp/resources/open_data/public_data_license_v1.0"
LICENSE_NAME = {"ja": "公共データ利用規約（第1.0版）", "en": "Public Data License 1.0 (PDL1.0)"}
PUBLISHER = {"ja": "青森県 企画政策部 情報システム課",
             "en": "Aomori Prefecture, Information Systems Division"}
PUBLISHERS = (Role.PLANNER, Role.ADMIN)
CATALOGUE_TITLE = ("農業IoTプラットフォーム オープンデータ", "Agri IoT platform open data")

FIELD_METRICS = tuple(m for p in ("paddy-water", "soil") for m in PROFILES[p].metrics
                      if m != "battery")
WEATHER_METRICS = tuple(m for m in PROFILES["weather-station"].metrics if m != "battery")
# Metrics whose daily value is a total (the sum over the day), not a mean.
DAILY_TOTALS = frozenset({"precipitation", "sunshine_duration"})

FORMATS = {"csv": "text/csv", "json": "application/json", "geojson": "application/geo+json"}


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    title: tuple[str, str]          # ja, en
    description: tuple[str, str]    # ja, en
    columns: tuple[tuple[str, str], ...]  # (key, Japanese CSV header), in CSV order


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        "field-conditions-daily",
        ("圃場状況の日別集計（市町村別）", "Daily field conditions by municipality"),
        ("水田の水位・水温と土壌の水分・温度・電気伝導度の日別の平均・最小・最大を市町村ごとに"
         "集計したもの。農家数が3未満の区分は秘匿（値は空欄）。",
         "Daily mean, minimum and maximum of paddy water level and temperature and of soil "
         "moisture, temperature and conductivity, per municipality; cells with fewer than "
         "3 farms are suppressed (empty)."),
        (("day", "日付"), ("municipality_code", "市町村コード"),
         ("municipality_ja", "市町村"), ("metric", "項目"), ("unit", "単位"),
         ("mean", "平均"), ("min", "最小"), ("max", "最大"), ("farms", "農家数"),
         ("fields", "圃場数"), ("suppressed", "秘匿"))),
    Dataset(
        "weather-daily",
        ("気象観測データの日別集計（市町村別）", "Daily weather by municipality"),
        ("圃場に設置された気象観測装置の日別の平均・最小・最大（降水量と日照時間は日合計）を"
         "市町村ごとにまとめたもの。観測装置の識別子と位置は公開しない。",
         "Daily mean, minimum and maximum (daily totals for precipitation and sunshine) of "
         "the weather stations on fields, per municipality; station ids and positions are "
         "not published."),
        (("day", "日付"), ("municipality_code", "市町村コード"),
         ("municipality_ja", "市町村"), ("metric", "項目"), ("unit", "単位"),
         ("mean", "平均"), ("min", "最小"), ("max", "最大"), ("daily_total", "日合計"),
         ("stations", "観測装置数"))),
    Dataset(
        "harvest-forecast",
        ("収穫適期予測（市町村別）", "Harvest-timing forecast by municipality"),
        ("各圃場の最新の収穫適期予測の開始日を市町村ごとに集計したもの（最早・中央・最遅）。"
         "農家数が3未満の区分は秘匿（値は空欄）。",
         "Earliest, median and latest predicted opening of the harvest window of the fields "
         "of each municipality, from each field's latest forecast; cells with fewer than 3 "
         "farms are suppressed (empty)."),
        (("year", "年"), ("municipality_code", "市町村コード"),
         ("municipality_ja", "市町村"), ("forecast_as_of", "予測日"),
         ("earliest_opening", "最早開始日"), ("median_opening", "中央開始日"),
         ("latest_opening", "最遅開始日"), ("median_closing", "中央終了日"),
         ("farms", "農家数"), ("fields", "圃場数"), ("suppressed", "秘匿"))),
)}


_BY_NAME = {m.name: m for m in AOMORI.values()}
_BY_NAME_JA = {m.name_ja: m.name for m in AOMORI.values()}


async def platform_municipality(conn: AsyncConnection, name: str) -> str | None:
    """The platform's name of municipality ``name`` (its own name, or the
    Japanese one of the table: 弘前市 is Hirosaki), or None when it is
    neither in the table nor the municipality of any field."""
    if name in _BY_NAME:
        return name
    if name in _BY_NAME_JA:
        return _BY_NAME_JA[name]
    cur = await conn.execute("SELECT 1 FROM fields WHERE municipality = %s LIMIT 1", (name,))
    return name if await cur.fetchone() else None


def municipality_names(name: str | None) -> tuple[str | None, str | None]:
    """(local government code, Japanese name) of the municipality the
    platform calls ``name``; a name the table does not know keeps no code
    and itself as its Japanese name."""
    known = _BY_NAME.get(name) if name is not None else None
    return (known.code, known.name_ja) if known else (None, name)


class OpenDataError(ValueError):
    """A download cannot be answered as asked; the message says what to change."""


def attribution(dataset: Dataset, page_url: str) -> str:
    """出典 text as PDL1.0 asks users to give it."""
    return (f"出典：{PUBLISHER['ja']}「{dataset.title[0]}」（{page_url}）、"
            f"公共データ利用規約（第1.0版）（{LICENSE_URL}）")


# -- what is published --------------------------------------------------------

async def publications(conn: AsyncConnection) -> dict[str, dict]:
    """Each dataset of DATASETS with its publication state."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT name, published, published_at, published_by, withdrawn_at "
                          "FROM open_datasets WHERE name = ANY(%s)", (list(DATASETS),))
        rows = {r["name"]: r for r in await cur.fetchall()}
    out = {}
    for name in DATASETS:
        r = rows.get(name, {})
        out[name] = {"dataset": name, "published": bool(r.get("published")),
                     "published_at": _iso(r.get("published_at")),
                     "published_by": r.get("published_by"),
                     "withdrawn_at": _iso(r.get("withdrawn_at"))}
    return out


async def is_published(conn: AsyncConnection, name: str) -> bool:
    cur = await conn.execute("SELECT published FROM open_datasets WHERE name = %s", (name,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def publish(conn: AsyncConnection, user: User, name: str, published: bool) -> dict:
    """Publish (or withdraw) dataset ``name``; planners and admins only. The
    first publication's time and publisher stay."""
    access.require_role(user, *PUBLISHERS, action="publishing open data")
    if published:
        await conn.execute(
            "INSERT INTO open_datasets (name, published, published_at, published_by) "
            "VALUES (%s, true, now(), %s) ON CONFLICT (name) DO UPDATE SET published = true, "
            "published_at = coalesce(open_datasets.published_at, now()), "
            "published_by = coalesce(open_datasets.published_by, EXCLUDED.published_by), "
            "withdrawn_at = NULL, changed_at = now()", (name, user.name))
    else:
        await conn.execute(
            "INSERT INTO open_datasets (name, published, withdrawn_at) VALUES (%s, false, now()) "
            "ON CONFLICT (name) DO UPDATE SET published = false, withdrawn_at = now(), "
            "changed_at = now()", (name,))
    return (await publications(conn))[name]


# -- the catalogue -----------------------------------------------------------

def _lang(pair: tuple[str, str] | dict) -> list[dict]:
    ja, en = (pair["ja"], pair["en"]) if isinstance(pair, dict) else pair
    return [{"@value": ja, "@language": "ja"}, {"@value": en, "@language": "en"}]


async def _modified(conn: AsyncConnection) -> dict[str, str | None]:
    """The latest day each dataset has data for (one index probe per device
    and metric)."""
    out: dict[str, str | None] = {}
    for name, profiles, metrics in (
            ("field-conditions-daily", ["paddy-water", "soil"], list(FIELD_METRICS)),
            ("weather-daily", ["weather-station"], list(WEATHER_METRICS))):
        cur = await conn.execute(
            "SELECT max(x.day) FROM devices d CROSS JOIN unnest(%s::text[]) AS m(metric) "
            "CROSS JOIN LATERAL (SELECT max(r.day) AS day FROM readings_daily r "
            "WHERE r.device_id = d.id COLLATE \"C\" AND r.metric = m.metric) x "
            "WHERE d.profile = ANY(%s) AND d.field_id IS NOT NULL", (metrics, profiles))
        out[name] = _iso((await cur.fetchone())[0])
    cur = await conn.execute("SELECT max(computed_for) FROM field_harvest_windows")
    out["harvest-forecast"] = _iso((await cur.fetchone())[0])
    return out


async def catalogue(conn: AsyncConnection, base_url: str) -> dict:
    """The DCAT catalogue (JSON-LD) of the published datasets; ``base_url``
    is the site's address without a trailing slash (download URLs start
    with it)."""
    published = {n: p for n, p in (await publications(conn)).items() if p["published"]}
    modified = await _modified(conn) if published else {}
    page_url = f"{base_url}/api/v1/open-data"
    datasets = []
    for name, state in published.items():
        d = DATASETS[name]
        datasets.append({
            "@type": "dcat:Dataset",
            "dct:identifier": name,
            "dct:title": _lang(d.title),
            "dct:description": _lang(d.description),
            "dct:publisher": {"@type": "foaf:Organization", "foaf:name": _lang(PUBLISHER)},
            "dct:license": {"@id": LICENSE_URL, "dct:title": _lang(LICENSE_NAME)},
            "cc:attributionText": attribution(d, page_url),
            "dct:issued": state["published_at"],
            "dct:modified": modified.get(name) or state["published_at"][:10],
            "dct:temporal": {"dcat:maximumDays": MAX_DAYS},
            "dcat:distribution": [{
                "@type": "dcat:Distribution",
                "dct:format": fmt.upper(),
                "dcat:mediaType": media,
                "dcat:downloadURL": {"@id": f"{page_url}/{name}.{fmt}"},
                "dct:license": {"@id": LICENSE_URL},
            } for fmt, media in FORMATS.items()],
        })
    return {
        "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                     "foaf": "http://xmlns.com/foaf/0.1/", "cc": "http://creativecommons.org/ns#"},
        "@type": "dcat:Catalog",
        "@id": page_url,
        "dct:title": _lang(CATALOGUE_TITLE),
        "dct:publisher": {"@type": "foaf:Organization", "foaf:name": _lang(PUBLISHER)},
        "dct:license": {"@id": LICENSE_URL},
        "dcat:dataset": datasets,
    }


# -- rows -------------------------------------------------------------------

def check_range(start: date, end: date) -> None:
    if start > end:
        raise OpenDataError("start must be on or before end")
    if (end - start).days + 1 > MAX_DAYS:
        raise OpenDataError(f"a download covers at most {MAX_DAYS} days; ask for a shorter "
                            f"range (start and end are ISO dates, e.g. 2026-05-01)")


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _num(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


_CONDITIONS = """
    SELECT rd.day, f.municipality, rd.metric, sum(rd.sum) / sum(rd.count) AS mean,
           min(rd.min) AS min, max(rd.max) AS max,
           count(DISTINCT coalesce(f.owner, '#' || f.id)) AS farms,
           count(DISTINCT f.id) AS fields
    FROM devices d JOIN fields f ON f.id = d.field_id
    CROSS JOIN unnest(%(metrics)s::text[]) AS m(metric)
    JOIN readings_daily rd ON rd.device_id = d.id COLLATE "C" AND rd.metric = m.metric
        AND rd.day BETWEEN %(start)s AND %(end)s
    WHERE rd.count > 0 AND d.profile = ANY(%(profiles)s)
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""

_WEATHER = """
    SELECT rd.day, f.municipality, rd.metric, sum(rd.sum) / sum(rd.count) AS mean,
           min(rd.min) AS min, max(rd.max) AS max, avg(rd.sum) AS daily_total,
           count(DISTINCT d.id) AS stations
    FROM devices d JOIN fields f ON f.id = d.field_id
    CROSS JOIN unnest(%(metrics)s::text[]) AS m(metric)
    JOIN readings_daily rd ON rd.device_id = d.id COLLATE "C" AND rd.metric = m.metric
        AND rd.day BETWEEN %(start)s AND %(end)s
    WHERE rd.count > 0 AND d.profile = 'weather-station'
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""

# Each field's latest forecast of the year (as computed up to ``end``).
_HARVEST = """
    WITH latest AS (
        SELECT DISTINCT ON (w.field_id, extract(year FROM w.computed_for))
               w.field_id, w.computed_for, w.opens, w.closes
        FROM field_harvest_windows w
        WHERE w.computed_for BETWEEN %(start)s AND %(end)s AND w.opens IS NOT NULL
        ORDER BY w.field_id, extract(year FROM w.computed_for), w.computed_for DESC)
    SELECT extract(year FROM l.computed_for)::int AS year, f.municipality,
           max(l.computed_for) AS forecast_as_of, min(l.opens) AS earliest_opening,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY l.opens) AS median_opening,
           max(l.opens) AS latest_opening,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY l.closes) AS median_closing,
           count(DISTINCT coalesce(f.owner, '#' || f.id)) AS farms, count(*) AS fields
    FROM latest l JOIN fields f ON f.id = l.field_id
    GROUP BY 1, 2 ORDER BY 1, 2"""

_SUPPRESSIBLE = {
    "field-conditions-daily": ("mean", "min", "max", "farms", "fields"),
    "harvest-forecast": ("forecast_as_of", "earliest_opening", "median_opening",
                         "latest_opening", "median_closing", "farms", "fields"),
}


async def rows(conn: AsyncConnection, name: str, start: date, end: date) -> list[dict]:
    """The rows of dataset ``name`` from ``start`` to ``end`` (days, inclusive),
    cells below MIN_FARMS suppressed."""
    check_range(start, end)
    params = {"start": start, "end": end}
    if name == "field-conditions-daily":
        query, params = _CONDITIONS, {**params, "profiles": ["paddy-water", "soil"],
                                      "metrics": list(FIELD_METRICS)}
    elif name == "weather-daily":
        query, params = _WEATHER, {**params, "metrics": list(WEATHER_METRICS)}
    elif name == "harvest-forecast":
        query = _HARVEST
    else:
        raise KeyError(name)
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SET LOCAL jit = off")  # compiling takes longer than the query
        await cur.execute(query, params)
        found = await cur.fetchall()
    out = []
    for r in found:
        code, name_ja = municipality_names(r["municipality"])
        item: dict = {"municipality": r["municipality"]}
        for key, _header in DATASETS[name].columns:
            if key == "municipality_code":
                item[key] = code
            elif key == "municipality_ja":
                item[key] = name_ja
            elif key == "unit":
                item[key] = METRICS[r["metric"]].unit
            elif key == "suppressed":
                item[key] = r["farms"] < MIN_FARMS
            elif key == "daily_total":
                item[key] = (_num(r["daily_total"]) if r["metric"] in DAILY_TOTALS else None)
            elif isinstance(r[key], date | datetime):
                item[key] = _iso(r[key])
            elif isinstance(r[key], float):
                item[key] = _num(r[key])
            else:
                item[key] = r[key]
        if item.get("suppressed"):
            for key in _SUPPRESSIBLE[name]:
                item[key] = None
        out.append(item)
    return out


async def places(conn: AsyncConnection) -> dict[str, tuple[float, float] | None]:
    """A municipality's point (lon, lat): the mean of its fields' centres,
    rounded to PLACE_DECIMALS; None below MIN_FARMS farms."""
    cur = await conn.execute(
        "SELECT municipality, avg(centroid_lon), avg(centroid_lat), "
        "count(DISTINCT coalesce(owner, '#' || id)) FROM fields "
        "WHERE centroid_lon IS NOT NULL AND centroid_lat IS NOT NULL GROUP BY municipality")
    return {m: ((round(lon, PLACE_DECIMALS), round(lat, PLACE_DECIMALS))
                if farms >= MIN_FARMS else None)
            for m, lon, lat, farms in await cur.fetchall()}


def csv_bytes(name: str, items: list[dict]) -> bytes:
    """Plain CSV (UTF-8 with a BOM for Excel, CRLF), Japanese headers; a
    suppressed cell is empty and its 秘匿 column is 'x'."""
    columns = DATASETS[name].columns
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header for _key, header in columns])
    for item in items:
        writer.writerow([_cell(key, item[key]) for key, _header in columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _cell(key: str, value) -> str:
    if key == "suppressed":
        return "x" if value else ""
    if key == "municipality_ja":
        return safe_text(value)
    return "" if value is None else str(value)


def safe_text(value: str | None) -> str:
    """Text for a spreadsheet cell that Excel will not take for a formula."""
    if value is None:
        return ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def geojson(items: list[dict], where: dict[str, tuple[float, float] | None]) -> dict:
    """The rows as a FeatureCollection: each at its municipality's point
    (null geometry where the municipality has no publishable point)."""
    features = []
    for item in items:
        point = where.get(item["municipality"])
        features.append({"type": "Feature", "properties": item,
                         "geometry": None if point is None else
                         {"type": "Point", "coordinates": list(point)}})
    return {"type": "FeatureCollection", "features": features}


# -- the showcase -------------------------------------------------------------

_APP_COLUMNS = "id, name, organisation, url, datasets, description, registered_at"


def _app(r: dict) -> dict:
    return {"id": r["id"], "name": r["name"], "organisation": r["organisation"],
            "url": r["url"], "datasets": list(r["datasets"]), "description": r["description"],
            "registered_at": _iso(r["registered_at"])}


async def showcase(conn: AsyncConnection, *, cursor: int | None = None,
                   limit: int = 100) -> list[dict]:
    """Up to ``limit + 1`` apps and services of the showcase, newest first
    (public: no user names)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_APP_COLUMNS} FROM showcase_apps WHERE (%(cursor)s::bigint IS NULL "
            f"OR id < %(cursor)s) ORDER BY id DESC LIMIT %(limit)s",
            {"cursor": cursor, "limit": limit + 1})
        return [_app(r) for r in await cur.fetchall()]


async def add_app(conn: AsyncConnection, user: User, values: dict) -> dict:
    """Register an app or service (``values``: name, organisation, url,
    datasets, description); planners and admins only."""
    access.require_role(user, *PUBLISHERS, action="registering apps in the showcase")
    unknown = [d for d in values["datasets"] if d not in DATASETS]
    if unknown:
        raise OpenDataError(f"unknown datasets {', '.join(repr(u[:64]) for u in unknown)}; "
                            f"choose from {', '.join(DATASETS)}")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"INSERT INTO showcase_apps (name, organisation, url, datasets, description, "
            f"registered_by) VALUES (%(name)s, %(organisation)s, %(url)s, %(datasets)s, "
            f"%(description)s, %(user)s) RETURNING {_APP_COLUMNS}",
            {**values, "datasets": sorted(set(values["datasets"])), "user": user.name})
        return _app(await cur.fetchone())
