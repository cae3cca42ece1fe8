"""What the analytics read from the database for a season: the fields and
their seasons, the weather station nearest to each field, the daily and
hourly weather of the stations, the paddy sensors' water, and the officers'
records. Times are Asia/Tokyo days (the rollups' days)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd
import psycopg

from agri.clock import TZ

STATION_PROFILE = "weather-station"
PADDY_PROFILE = "paddy-water"
PONDED_M = 0.01  # a day whose mean level is above this has the growing point under water
EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True, slots=True)
class FieldSeason:
    field_id: str
    name: str
    owner: str | None
    municipality: str
    cultivar: str
    transplanted_on: date
    lon: float
    lat: float
    geometry: dict


@dataclass(frozen=True, slots=True)
class Station:
    device_id: str
    lon: float
    lat: float


def seasons(conn: psycopg.Connection, year: int, *, field_ids: Iterable[str] | None = None
            ) -> list[FieldSeason]:
    """Fields with a season in ``year`` (transplanted), optionally only ``field_ids``."""
    ids = list(field_ids) if field_ids is not None else None
    rows = conn.execute(
        "SELECT f.id, f.name, f.owner, f.municipality, s.cultivar, s.transplanted_on, "
        "f.centroid_lon, f.centroid_lat, f.geometry FROM field_seasons s "
        "JOIN fields f ON f.id = s.field_id WHERE s.year = %s "
        "AND (%s::text[] IS NULL OR f.id = ANY(%s::text[])) ORDER BY f.id",
        (year, ids, ids)).fetchall()
    return [FieldSeason(*r) for r in rows if r[6] is not None and r[7] is not None]


def stations(conn: psycopg.Connection) -> list[Station]:
    """Weather stations placed on a field (their position is the field's centroid)."""
    rows = conn.execute(
        "SELECT d.id, f.centroid_lon, f.centroid_lat FROM devices d "
        "JOIN fields f ON f.id = d.field_id WHERE d.profile = %s AND d.revoked_at IS NULL "
        "AND f.centroid_lon IS NOT NULL ORDER BY d.id", (STATION_PROFILE,)).fetchall()
    return [Station(*r) for r in rows]


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def by_distance(field: FieldSeason, candidates: list[Station]) -> list[Station]:
    return sorted(candidates, key=lambda s: distance_m(field.lon, field.lat, s.lon, s.lat))


def daily(conn: psycopg.Connection, device_ids: list[str], metric: str, *, start: date,
          end: date) -> pd.DataFrame:
    """Daily mean, min and max of ``metric`` per device (columns device, day, mean,
    min, max, count) from the daily rollup."""
    rows = conn.execute(
        "SELECT device_id, day, sum / count, min, max, count FROM readings_daily "
        "WHERE device_id = ANY(%s) AND metric = %s AND day BETWEEN %s AND %s AND count > 0 "
        "ORDER BY device_id, day", (device_ids, metric, start, end)).fetchall()
    return pd.DataFrame(rows, columns=["device", "day", "mean", "min", "max", "count"])


def daily_series(frame: pd.DataFrame, device_id: str, column: str = "mean",
                 *, min_count: int = 1) -> pd.Series:
    part = frame[(frame["device"] == device_id) & (frame["count"] >= min_count)]
    return pd.Series(part[column].to_numpy(dtype=float),
                     index=pd.DatetimeIndex(pd.to_datetime(part["day"])), name=column)


HOURLY_METRICS = {  # metric -> (aggregate of the hour, column of analytics.blast)
    "air_temp": ("avg", "air_temp"),
    "precipitation": ("sum", "precipitation"),
    "wind_speed": ("avg", "wind_speed"),
    "sunshine_duration": ("sum_h", "sunshine"),
    "leaf_wetness": ("avg", "leaf_wetness"),
}


def hourly_weather(conn: psycopg.Connection, device_id: str, *, start: datetime,
                   end: datetime) -> pd.DataFrame:
    """Hourly weather of one station as :func:`agri.analytics.blast.nights` takes it
    (precipitation in mm per hour, sunshine in hours; leaf wetness where reported)."""
    rows = conn.execute(
        "SELECT metric, bucket, sum, count FROM readings_hourly WHERE device_id = %s "
        "AND metric = ANY(%s) AND bucket >= %s AND bucket < %s AND count > 0",
        (device_id, list(HOURLY_METRICS), start, end)).fetchall()
    columns: dict[str, dict] = {}
    for metric, bucket, total, count in rows:
        how, column = HOURLY_METRICS[metric]
        value = total / count if how == "avg" else total / 3600.0 if how == "sum_h" else total
        columns.setdefault(column, {})[bucket] = value
    index = pd.date_range(start, end, freq="h", inclusive="left", tz=TZ)
    frame = pd.DataFrame({c: pd.Series(v) for c, v in columns.items()})
    if frame.empty:
        return pd.DataFrame(index=index, columns=["air_temp"], dtype=float)
    frame.index = pd.DatetimeIndex(frame.index).tz_convert(TZ)
    return frame.reindex(index)


def paddy_sensors(conn: psycopg.Connection, field_ids: list[str]) -> dict[str, str]:
    """Field -> its paddy water sensor (the first registered where there are several)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (field_id) field_id, id FROM devices WHERE profile = %s "
        "AND revoked_at IS NULL AND field_id = ANY(%s) ORDER BY field_id, created_at, id",
        (PADDY_PROFILE, field_ids)).fetchall()
    return dict(rows)


def ponded_water_tmean(conn: psycopg.Connection, device_id: str, *, start: date,
                       end: date) -> pd.Series:
    """Daily mean water temperature on the days the paddy was ponded."""
    rows = conn.execute(
        "SELECT t.day, t.sum / t.count FROM readings_daily t JOIN readings_daily l "
        "ON l.device_id = t.device_id AND l.day = t.day AND l.metric = 'water_level' "
        "WHERE t.device_id = %s AND t.metric = 'water_temp' AND t.day BETWEEN %s AND %s "
        "AND t.count > 0 AND l.count > 0 AND l.sum / l.count > %s ORDER BY t.day",
        (device_id, start, end, PONDED_M)).fetchall()
    return pd.Series([r[1] for r in rows],
                     index=pd.DatetimeIndex(pd.to_datetime([r[0] for r in rows])), dtype=float)


def water_levels(conn: psycopg.Connection, device_id: str, *, start: datetime,
                 end: datetime) -> pd.Series:
    """Water level readings (m) by measurement time, without those quality control
    flagged (``readings_usable``)."""
    rows = conn.execute(
        "SELECT time, value FROM readings_usable WHERE device_id = %s AND metric = "
        "'water_level' AND time >= %s AND time < %s ORDER BY time",
        (device_id, start, end)).fetchall()
    index = pd.DatetimeIndex([r[0] for r in rows])
    if len(index):
        index = index.tz_convert(TZ)
    return pd.Series([r[1] for r in rows], index=index, dtype=float, name="level_m")


def observed_dates(conn: psycopg.Connection, year: int, kind: str) -> dict[str, date]:
    """Field -> the date an officer recorded for ``kind`` in ``year`` (the latest
    record where there are several)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (field_id) field_id, observed_on FROM observations "
        "WHERE year = %s AND kind = %s ORDER BY field_id, observed_on DESC",
        (year, kind)).fetchall()
    return dict(rows)


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=TZ)


def day_end(day: date) -> datetime:
    return day_start(day + timedelta(days=1))
