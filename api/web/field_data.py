"""What the farmer's pages show, gathered from the query modules: the list
of fields with their status, and one field's page and season report.

Everything is scoped by the caller (api/queries/access.py); the pages only
format what these functions return. Water depths are shown in cm.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from psycopg import AsyncConnection

from agri.api.accounts import User
from agri.api.queries import access, advisories, conditions, field_status, imagery, results, series
from agri.api.web.svg_charts import BandSpan
from agri.clock import TZ, today_local

MAX_LISTED = 100        # fields on one page of the list
CHART_DAYS = 7
WATER_PROFILE = "paddy-water"
SEVERITY_RANK = {"urgent": 0, "warning": 1, "info": 2}
SEASON_START = (4, 1)   # a season without a transplanting date: from 1 April
SEASON_END = (10, 31)


@dataclass(frozen=True, slots=True)
class FieldCard:
    id: str
    name: str
    shared: bool                  # shared with the user, read only
    status: field_status.Status
    level_cm: float | None
    level_at: datetime | None
    level_age_s: float | None
    water_state: str | None       # inside | below | above | no data (today's analytics)
    stage: str | None
    advice: dict | None           # the most urgent advisory valid today


def cm(metres: float | None) -> float | None:
    return None if metres is None else round(metres * 100, 1)


def _when(iso: str | None) -> datetime | None:
    return None if iso is None else datetime.fromisoformat(iso)


async def _today_advice(conn: AsyncConnection, user: User) -> dict[str, list[dict]]:
    """Published advisories valid today, per field they reach (most urgent first)."""
    found = await advisories.list_for_user(conn, user, status="published", current=True,
                                           limit=advisories.PAGE)
    per: dict[str, list[dict]] = {}
    for item in found["items"]:
        for fid in item["fields"]:
            per.setdefault(fid, []).append(item)
    for items in per.values():
        items.sort(key=lambda a: (SEVERITY_RANK.get(a["severity"], 9), -a["id"]))
    return per


async def my_fields(conn: AsyncConnection, user: User, *, after: str | None,
                    max_future_s: float) -> tuple[list[FieldCard], str | None]:
    """The user's fields (owned and shared), the one needing water first, then
    by status; and the id to continue after when there are more."""
    cur = await conn.execute(
        f"SELECT f.id, f.name, f.owner FROM fields f WHERE {access.FIELD_VISIBLE} "
        f"AND (%(after)s::text IS NULL OR f.id > %(after)s) ORDER BY f.id LIMIT %(n)s",
        {**access.who(user), "after": after, "n": MAX_LISTED + 1})
    rows = await cur.fetchall()
    more = rows[MAX_LISTED - 1][0] if len(rows) > MAX_LISTED else None
    rows = rows[:MAX_LISTED]
    statuses = await field_status.field_statuses(conn, user, [r[0] for r in rows],
                                                 max_future_s=max_future_s)
    advice = (await _today_advice(conn, user)
              if user.role in advisories.READERS else {})
    ids = [r[0] for r in rows]
    paddy = [(d, p, f) for d, p, f in await access.devices_on(conn, user, ids)
             if p == WATER_PROFILE]
    found = await conditions.latest(conn, [(d, "water_level") for d, _, _ in paddy],
                                    max_future_s=max_future_s)
    states = await results.current_states(conn, ids)
    cards = []
    for fid, name, owner in rows:
        level = conditions.by_metric([(d, p) for d, p, f in paddy if f == fid],
                                     found).get("water_level")
        water_state, stage = states.get(fid, (None, None))
        cards.append(FieldCard(
            id=fid, name=name, shared=owner != user.name and user.role == "farmer",
            status=statuses.get(fid) or field_status.judge([], heard=False, analysed=False,
                                                          as_of=None, devices=0),
            level_cm=cm(level["value"]) if level else None,
            level_at=_when(level["measured_at"]) if level else None,
            level_age_s=level["age_s"] if level else None,
            water_state=water_state, stage=stage,
            advice=(advice.get(fid) or [None])[0]))
    rank = field_status.RANK
    cards.sort(key=lambda c: (c.water_state != "below", -rank[c.status.colour],
                              c.level_cm if c.level_cm is not None else 1e9, c.name))
    return cards, more


def newest(times) -> datetime | None:
    times = [t for t in times if t is not None]
    return max(times) if times else None


def local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ)


async def water_bands(conn: AsyncConnection, field_id: str, first: date, last: date
                      ) -> list[BandSpan]:
    """The target water band of each day from ``first`` to ``last``, in cm."""
    cur = await conn.execute(
        "SELECT day, low_m, high_m FROM field_water_bands WHERE field_id = %s "
        "AND day BETWEEN %s AND %s ORDER BY day", (field_id, first, last))
    return [BandSpan(local_midnight(day), local_midnight(day + timedelta(days=1)),
                     low * 100, high * 100) for day, low, high in await cur.fetchall()]


async def _points(conn, devices: list[str], metric: str, start: datetime, end: datetime,
                  width: timedelta, scale: float = 1.0) -> list[tuple[datetime, float]]:
    return (await _points_of(conn, devices, {metric: scale}, start, end, width))[metric]


async def _points_of(conn, devices: list[str], scales: dict[str, float], start: datetime,
                     end: datetime, width: timedelta) -> dict[str, list[tuple[datetime, float]]]:
    """(bucket start, mean × scale) of each metric of ``scales``, in one query."""
    if not devices:
        return {m: [] for m in scales}
    found, _span, _source = await series.bucket_rows_of(
        conn, devices=devices, metrics=list(scales), start=start, end=end, width=width)
    return {m: [(t, avg * k) for t, _lo, _hi, avg, _n in found.get(m, []) if avg is not None]
            for m, k in scales.items()}


async def field_page(conn: AsyncConnection, user: User, row, *, max_future_s: float) -> dict:
    """Everything the field page shows (``row``: access.visible_field's), each
    thing read once: the status is judged from the readings, water and risks
    the page reads for itself."""
    fid = row[0]
    devices = await access.field_devices(conn, user, fid)
    paddy = [d for d in devices if d[1] == WATER_PROFILE]
    found = await conditions.latest(
        conn, list(dict.fromkeys(conditions.metric_pairs(paddy) + field_status.probes(
            [(d, p, fid) for d, p in devices]))), max_future_s=max_future_s)
    latest = conditions.by_metric(paddy, found)
    end = datetime.now(UTC)
    today = today_local()
    first = today - timedelta(days=CHART_DAYS - 1)
    start = local_midnight(first)
    ids = [d[0] for d in paddy]
    hour = timedelta(hours=1)
    bands = await water_bands(conn, fid, first, today)
    advice = []
    if user.role in advisories.READERS:
        found_advice = await advisories.for_field(conn, user, fid, limit=advisories.PAGE,
                                                  seen=True)
        advice = [a for a in found_advice["items"] if a["status"] == "published"
                  and a["valid_from"] <= today.isoformat() <= a["valid_until"]]
        advice.sort(key=lambda a: (SEVERITY_RANK.get(a["severity"], 9), -a["id"]))
    found_results = await results.current(conn, fid, None)
    points = await _points_of(conn, ids, {"water_level": 100.0, "water_temp": 1.0}, start, end,
                              hour)
    water, risks = found_results["water"], found_results["risks"]
    return {
        "field": {"id": fid, "name": row[1], "owner": row[2], "cultivar": row[3],
                  "municipality": row[5]},
        "status": field_status.judge_one(fid, devices, found, water, risks),
        "latest": latest,
        "level": points["water_level"],
        "temp": points["water_temp"],
        "bands": bands,
        "band_now": next((b for b in bands if b.start <= end < b.end), None),
        "chart_start": start, "chart_end": end,
        "water": water,
        "stage": found_results["stage"],
        "harvest": found_results["harvest_window"],
        "risks": risks,
        "image": await imagery.latest_field_map(conn, user, fid, seen=True),
        "advice": advice,
        "data_time": newest(_when(m["measured_at"]) for m in latest.values()),
    }


def season_span(year: int, transplanted_on: date | None) -> tuple[date, date]:
    first = transplanted_on or date(year, *SEASON_START)
    return first, min(date(year, *SEASON_END), today_local())


async def season_report(conn: AsyncConnection, user: User, row, year: int) -> dict:
    """A season of one field: its record, water by day against the band,
    stages and harvest window as last computed that year, and the advice."""
    fid = row[0]
    seasons = await results.seasons(conn, fid)
    season = next((s for s in seasons if s["year"] == year), None)
    planted = date.fromisoformat(season["transplanted_on"]) if season and \
        season["transplanted_on"] else None
    first, last = season_span(year, planted)
    devices = [d[0] for d in await access.field_devices(conn, user, fid)
               if d[1] == WATER_PROFILE]
    start, end = local_midnight(first), local_midnight(last + timedelta(days=1))
    daily = (await _points(conn, devices, "water_level", start, end, timedelta(days=1), 100.0)
             if first <= last else [])
    cur = await conn.execute(
        "SELECT state, count(*) FROM field_water_status WHERE field_id = %s "
        "AND computed_for BETWEEN %s AND %s GROUP BY state", (fid, first, last))
    states = dict(await cur.fetchall())
    end_of_year = date(year, 12, 31)
    advice = []
    if user.role in advisories.READERS:
        found = await advisories.for_field(conn, user, fid, limit=advisories.PAGE)
        advice = [a for a in found["items"] if a["status"] == "published"
                  and a["valid_from"][:4] == str(year)]
    return {
        "season": season, "years": [s["year"] for s in seasons],
        "first": first, "last": last, "chart_start": start, "chart_end": end,
        "daily": daily, "bands": await water_bands(conn, fid, first, last) if daily else [],
        "days_recorded": len(daily), "days_inside": states.get("inside", 0),
        "stage": await results.stage(conn, fid, end_of_year),
        "harvest": await results.harvest_window(conn, fid, end_of_year),
        "advice": advice,
        "data_time": daily[-1][0] if daily else None,
    }
