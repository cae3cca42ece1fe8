"""Series reads: raw points, or buckets aligned to the platform's days
(agri/clock.py: Asia/Tokyo).

Where a bucket is answered from:

- whole days (``1d``, ``7d`` ...): the daily rollup ``readings_daily``;
- whole hours (``1h``, ``3h`` ...): the hourly rollup ``readings_hourly``;
- anything shorter (``10m`` ...), and raw points: the readings themselves.

The rollups are kept by ingest in the same transaction as the readings it
stores (ingest/writer.py), so they hold every committed reading, today's
partial day included, the moment it is readable; where a platform turns that
off (``platform_features.maintained_rollups``), every bucket is computed from
the readings instead. Buckets are whole: the range asked for is widened to
the buckets it touches (a rollup row cannot be split), and the answer names
the range it covers. Day buckets start at 00:00+09:00 on the range's first
day; hour and minute buckets on multiples of their width from 2000-01-03
00:00+09:00 (TimescaleDB's ``time_bucket`` origin, in Tokyo time).

How far one request may reach is capped by where it is answered from
(``RAW_MAX``, ``HOURLY_MAX``, ``DAILY_MAX``): a longer range is a
:class:`SeriesError` (the route's 422) naming the bucket to use instead.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from psycopg import AsyncConnection

from agri.clock import TIME_ZONE, TZ

MAX_RAW_POINTS = 20_000
MAX_BUCKETS = 20_000
RAW_MAX = timedelta(days=31)         # raw points, and buckets under an hour
HOURLY_MAX = timedelta(days=366)     # buckets of whole hours
DAILY_MAX = timedelta(days=5 * 366)  # buckets of whole days
ORIGIN = datetime(2000, 1, 3, tzinfo=TZ)
FEATURE_TTL_S = 60.0  # how long the maintained_rollups flag is trusted before it is read again
_BUCKET = re.compile(r"^(\d{1,3})(m|h|d)$")
_ALIASES = {"hour": "1h", "day": "1d"}
_DAY, _HOUR, _TICK = timedelta(days=1), timedelta(hours=1), timedelta(microseconds=1)

DAILY, HOURLY, RAW = "daily rollup", "hourly rollup", "raw readings"


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


def bucket_name(width: timedelta | None) -> str:
    if width is None:
        return "raw"
    for unit, size in (("d", _DAY), ("h", _HOUR)):
        if width % size == timedelta(0):
            return f"{width // size}{unit}"
    return f"{width // timedelta(minutes=1)}m"


def source_of(width: timedelta | None) -> str:
    """Where buckets of ``width`` come from when the rollups are maintained."""
    if width is None:
        return RAW
    if width % _DAY == timedelta(0):
        return DAILY
    if width % _HOUR == timedelta(0):
        return HOURLY
    return RAW


_CAPS = {RAW: (RAW_MAX, "raw points and buckets under 1h", "bucket=1h or 1d"),
         HOURLY: (HOURLY_MAX, "buckets of whole hours", "bucket=1d"),
         DAILY: (DAILY_MAX, "buckets of whole days", "several requests")}


def check_range(start: datetime, end: datetime, width: timedelta | None) -> None:
    """SeriesError when [start, end) is longer than the cap of ``width``'s source."""
    cap, what, instead = _CAPS[source_of(width)]
    if end - start > cap:
        raise SeriesError(
            f"start to end spans {(end - start) / _DAY:,.1f} days; {what} reach at most "
            f"{cap.days:,} days: narrow start/end or use {instead}")
    if width is not None and (end - start) / width > MAX_BUCKETS:
        raise SeriesError(f"more than {MAX_BUCKETS} buckets: widen bucket or narrow the range")


@dataclass(frozen=True, slots=True)
class Span:
    """The whole buckets a range touches: [first, end)."""

    first: datetime
    end: datetime


def span(start: datetime, end: datetime, width: timedelta) -> Span:
    if width % _DAY == timedelta(0):
        first = datetime.combine(start.astimezone(TZ).date(), datetime.min.time(), TZ)
    else:
        first = ORIGIN + (start - ORIGIN) // width * width
    last = first + (end - _TICK - first) // width * width
    return Span(first, last + width)


def iso(t: datetime) -> str:
    return t.astimezone(TZ).isoformat()


_maintained: tuple[float, bool] | None = None


async def rollups_maintained(conn: AsyncConnection) -> bool:
    """Whether ingest keeps the rollups (read at most once a minute)."""
    global _maintained
    now = time.monotonic()
    if _maintained is None or now - _maintained[0] > FEATURE_TTL_S:
        cur = await conn.execute("SELECT enabled FROM platform_features "
                                 "WHERE name = 'maintained_rollups'")
        row = await cur.fetchone()
        _maintained = (now, bool(row and row[0]))
    return _maintained[1]


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


# Day buckets: N-day groups counted from the first day of the span.
_DAILY_ROLLUP = """
SELECT metric, %(first)s::date + ((day - %(first)s::date) / %(n)s) * %(n)s AS b,
       min(min), max(max), sum(sum), sum(count)::bigint
FROM readings_daily
WHERE device_id = ANY(%(devices)s) AND metric = ANY(%(metrics)s)
  AND day >= %(first)s::date AND day < %(end)s::date
GROUP BY 1, 2 ORDER BY 1, 2"""
_DAILY_RAW = """
SELECT metric, %(first)s::date + (((time AT TIME ZONE %(tz)s)::date - %(first)s::date) / %(n)s)
       * %(n)s AS b, min(value), max(value), sum(value), count(*)
FROM readings
WHERE device_id = ANY(%(devices)s) AND metric = ANY(%(metrics)s)
  AND time >= %(first_t)s AND time < %(end_t)s
GROUP BY 1, 2 ORDER BY 1, 2"""
_HOURLY_ROLLUP = """
SELECT metric, time_bucket(%(width)s, bucket, %(origin)s::timestamptz) AS b,
       min(min), max(max), sum(sum), sum(count)::bigint
FROM readings_hourly
WHERE device_id = ANY(%(devices)s) AND metric = ANY(%(metrics)s)
  AND bucket >= %(first_t)s AND bucket < %(end_t)s
GROUP BY 1, 2 ORDER BY 1, 2"""
_BUCKETS_RAW = """
SELECT metric, time_bucket(%(width)s, time, %(origin)s::timestamptz) AS b,
       min(value), max(value), sum(value), count(*)
FROM readings
WHERE device_id = ANY(%(devices)s) AND metric = ANY(%(metrics)s)
  AND time >= %(first_t)s AND time < %(end_t)s
GROUP BY 1, 2 ORDER BY 1, 2"""


async def bucket_points(conn: AsyncConnection, *, devices: list[str], metric: str,
                        start: datetime, end: datetime, width: timedelta,
                        source: str | None = None) -> tuple[list[dict], Span, str]:
    """Buckets of ``width`` over the whole buckets [start, end) touches, of
    all ``devices`` together; returns the points, the span they cover and
    the source answered from. ``source``: RAW to compute from the readings
    whatever the width (the reference the rollups must equal); default:
    :func:`source_of`, or RAW where the rollups are not maintained."""
    rows, s, source = await bucket_rows(conn, devices=devices, metric=metric, start=start,
                                        end=end, width=width, source=source)
    return ([{"t": iso(t), "min": lo, "max": hi, "avg": avg, "count": n}
             for t, lo, hi, avg, n in rows], s, source)


async def bucket_rows(conn: AsyncConnection, *, devices: list[str], metric: str,
                      start: datetime, end: datetime, width: timedelta,
                      source: str | None = None
                      ) -> tuple[list[tuple[datetime, float, float, float, int]], Span, str]:
    """:func:`bucket_points` as (start, min, max, avg, count) tuples, for a
    page that draws them rather than sending them."""
    found, s, source = await bucket_rows_of(conn, devices=devices, metrics=[metric],
                                            start=start, end=end, width=width, source=source)
    return found.get(metric, []), s, source


async def bucket_rows_of(conn: AsyncConnection, *, devices: list[str], metrics: list[str],
                         start: datetime, end: datetime, width: timedelta,
                         source: str | None = None
                         ) -> tuple[dict[str, list[tuple[datetime, float, float, float, int]]],
                                    Span, str]:
    """:func:`bucket_rows` of several metrics in one query: {metric: rows}."""
    check_range(start, end, width)
    s = span(start, end, width)
    if source is None:
        source = source_of(width) if await rollups_maintained(conn) else RAW
    days = width % _DAY == timedelta(0)
    params = {"devices": devices, "metrics": metrics, "width": width, "origin": ORIGIN,
              "tz": TIME_ZONE, "first_t": s.first, "end_t": s.end,
              "first": s.first.astimezone(TZ).date(), "end": s.end.astimezone(TZ).date(),
              "n": width // _DAY}
    if days:
        query = _DAILY_ROLLUP if source == DAILY else _DAILY_RAW
    elif source == HOURLY:
        query = _HOURLY_ROLLUP
    else:
        query = _BUCKETS_RAW
    cur = await conn.execute(query, params)
    found: dict[str, list] = {}
    for metric, b, lo, hi, total, n in await cur.fetchall():
        t = datetime.combine(b, datetime.min.time(), TZ) if isinstance(b, date) and not \
            isinstance(b, datetime) else b
        found.setdefault(metric, []).append((t, lo, hi, total / n, int(n)))
    return found, s, source
