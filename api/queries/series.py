"""Series reads: raw points, or buckets aligned to the platform's days
(agri/clock.py: Asia/Tokyo). Hourly
and daily buckets come from the rollups, shorter ones from raw readings."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from psycopg import AsyncConnection

from agri.clock import TIME_ZONE, TZ

MAX_RAW_POINTS = 20_000
MAX_BUCKETS = 20_000
_BUCKET = re.compile(r"^(\d{1,3})(m|h|d)$")
_ALIASES = {"hour": "1h", "day": "1d"}


class SeriesError(ValueError):
    """The request cannot be answered as asked; the message says what to change."""


def parse_bucket(text: str | None) -> timedelta | None:
    if text in (None, "", "raw"):
        return None
    m = _BUCKET.match(_ALIASES.get(text, text))
    if not m:
        raise SeriesError("bucket must be like 10m, 1h or 1d (or raw)")
    n, unit = int(m.group(1)), m.group(2)
    width = {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]
    if width < timedelta(minutes=1):
        raise SeriesError("bucket must be at least 1m")
    return width


def iso(t: datetime) -> str:
    return t.astimezone(TZ).isoformat()


async def raw_points(conn: AsyncConnection, *, devices: list[str], metric: str,
                     start: datetime, end: datetime) -> list[dict]:
    cur = await conn.execute(
        """SELECT time, value FROM readings
           WHERE device_id = ANY(%s) AND metric = %s AND time >= %s AND time < %s
           ORDER BY time LIMIT %s""", (devices, metric, start, end, MAX_RAW_POINTS + 1))
    rows = await cur.fetchall()
    if len(rows) > MAX_RAW_POINTS:
        raise SeriesError(f"more than {MAX_RAW_POINTS} points: narrow start/end or set bucket")
    return [{"t": iso(t), "value": v} for t, v in rows]


async def bucket_points(conn: AsyncConnection, *, devices: list[str], metric: str,
                        start: datetime, end: datetime, width: timedelta) -> list[dict]:
    if (end - start) / width > MAX_BUCKETS:
        raise SeriesError(f"more than {MAX_BUCKETS} buckets: widen bucket or narrow the range")
    if width == timedelta(days=1):
        cur = await conn.execute(
            """SELECT (day::timestamp AT TIME ZONE %(tz)s) AS t, min(min), max(max),
                      sum(sum) / sum(count), sum(count)
               FROM readings_daily
               WHERE device_id = ANY(%(devices)s) AND metric = %(metric)s
                 AND day >= (%(start)s AT TIME ZONE %(tz)s)::date
                 AND day < (%(end)s AT TIME ZONE %(tz)s)::date
               GROUP BY 1 ORDER BY 1""",
            {"tz": TIME_ZONE, "devices": devices, "metric": metric, "start": start, "end": end})
    elif width == timedelta(hours=1):
        cur = await conn.execute(
            """SELECT bucket, min(min), max(max), sum(sum) / sum(count), sum(count)
               FROM readings_hourly
               WHERE device_id = ANY(%s) AND metric = %s AND bucket >= %s AND bucket < %s
               GROUP BY 1 ORDER BY 1""", (devices, metric, start, end))
    else:
        cur = await conn.execute(
            """SELECT time_bucket(%s, time, %s) AS t, min(value), max(value),
                      avg(value), count(*)
               FROM readings
               WHERE device_id = ANY(%s) AND metric = %s AND time >= %s AND time < %s
               GROUP BY 1 ORDER BY 1""", (width, TIME_ZONE, devices, metric, start, end))
    return [{"t": iso(t), "min": lo, "max": hi, "avg": avg, "count": int(n)}
            for t, lo, hi, avg, n in await cur.fetchall()]
