"""Sensor quality in the database: :func:`run_quality` reads a window of
readings, runs the checks of :mod:`agri.analytics.quality` and stores what they
found; :func:`usable_devices` and :func:`device_score` are what other analytics
ask. Readings are never changed or deleted: flags go to ``reading_flags``
(``readings_usable`` is readings minus the flagged ones), scores to
``device_quality``, one row per device and local day.

A run owns its window: it replaces the flags that start in it, so running it
twice stores the same rows, and decides the part in the window of a flag that
began before (a device stuck or silent since an earlier day: extended, not
duplicated; or ended at the window's start when this run finds it over).
Raw readings are read device by device through a server-side cursor, so
memory follows one device's window, not the fleet's; the peers' hourly
medians come from the hourly rollups.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
from psycopg.types.json import Jsonb

from agri.analytics import quality as q
from agri.clock import TZ
from agri.devices.profiles import PROFILES

logger = logging.getLogger(__name__)

MAX_DAYS = 62  # a longer window belongs in several runs
FETCH_ROWS = 50_000
US_PER_HOUR = 3_600_000_000
LOCK_ID = 0x71756C74  # transaction advisory lock: one run writes at a time
# Hourly means read: peers' references, drift baselines, floors and ceilings.
HOURLY_METRICS = sorted(set(q.DRIFT_TOLERANCE) | set(q.PEER_TOLERANCE) | set(q.FLAT_AT_FLOOR)
                        | set(q.FLAT_AT_CEILING))

DEVICES = """SELECT d.id, d.profile, f.municipality, f.centroid_lat, f.centroid_lon
FROM devices d LEFT JOIN fields f ON f.id = d.field_id"""
HOURLY = """SELECT device_id, metric, (extract(epoch FROM bucket) * 1000000)::int8, sum / count
FROM readings_hourly
WHERE bucket >= %s AND bucket < %s AND metric = ANY(%s) AND count > 0"""
READINGS = """SELECT device_id, metric, (extract(epoch FROM time) * 1000000)::int8, value,
       (extract(epoch FROM received_at) * 1000000)::int8
FROM readings WHERE time >= %s AND time < %s ORDER BY device_id, metric, time"""
HEARD_BEFORE = """SELECT device_id FROM readings_daily
WHERE day >= %s AND day < %s GROUP BY device_id"""
LAST_HEARD = """SELECT max(received_at) FROM readings
WHERE device_id = %s AND time >= %s AND time < %s"""
STAGE = """CREATE TEMP TABLE quality_flag_stage (
    device_id text COLLATE "C", metric text COLLATE "C", kind text, from_time timestamptz,
    to_time timestamptz, readings integer, excludes boolean, detail jsonb) ON COMMIT DROP"""
COPY_STAGE = """COPY quality_flag_stage (device_id, metric, kind, from_time, to_time, readings,
    excludes, detail) FROM STDIN"""
# The run's own flags: those starting in the window, of the devices it analysed.
DELETE_OWN = """DELETE FROM reading_flags
WHERE device_id = ANY(%(devices)s) AND from_time >= %(start)s AND from_time < %(end)s"""
# A flag that began before the window and goes on in it continues one stored by an
# earlier run: this run decides its part in the window (a later run's part beyond
# the window is kept).
_CONTINUES = """s.device_id = f.device_id AND s.metric = f.metric AND s.kind = f.kind
    AND s.from_time < %(start)s AND f.from_time <= s.from_time AND f.to_time >= s.from_time"""
EXTEND = f"""UPDATE reading_flags f SET to_time = CASE WHEN f.to_time >= %(end)s
        THEN greatest(f.to_time, m.to_time) ELSE m.to_time END,
    readings = greatest(f.readings, m.readings), detail = m.detail, computed_at = now()
FROM (SELECT f.device_id, f.metric, f.kind, f.from_time, max(s.to_time) AS to_time,
             max(s.readings) AS readings,
             (array_agg(s.detail ORDER BY s.to_time DESC))[1] AS detail
      FROM quality_flag_stage s JOIN reading_flags f ON {_CONTINUES}
      WHERE f.from_time < %(start)s
      GROUP BY 1, 2, 3, 4) m
WHERE f.device_id = m.device_id AND f.metric = m.metric AND f.kind = m.kind
  AND f.from_time = m.from_time"""
# One that this run does not find going on ends where the window begins.
TRUNCATE = f"""UPDATE reading_flags f
SET to_time = %(start)s - interval '1 microsecond', computed_at = now()
WHERE f.device_id = ANY(%(devices)s) AND f.from_time < %(start)s
  AND f.to_time >= %(start)s AND f.to_time < %(end)s
  AND NOT EXISTS (SELECT FROM quality_flag_stage s WHERE {_CONTINUES})"""
INSERT = """INSERT INTO reading_flags AS f (device_id, metric, kind, from_time, to_time,
    readings, excludes, detail)
SELECT s.device_id, s.metric, s.kind, s.from_time, s.to_time, s.readings, s.excludes, s.detail
FROM quality_flag_stage s
WHERE NOT EXISTS (SELECT FROM reading_flags o
    WHERE s.from_time < %(start)s AND o.device_id = s.device_id AND o.metric = s.metric
      AND o.kind = s.kind AND o.from_time <= s.from_time AND o.to_time >= s.to_time)
ON CONFLICT (device_id, metric, kind, from_time) DO UPDATE SET
    to_time = greatest(f.to_time, excluded.to_time), readings = excluded.readings,
    excludes = excluded.excludes, detail = excluded.detail, computed_at = now()"""
UPSERT_SCORE = """INSERT INTO device_quality AS d (device_id, computed_for, score,
    anomaly_score, reasons)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (device_id, computed_for) DO UPDATE SET score = excluded.score,
    anomaly_score = excluded.anomaly_score, reasons = excluded.reasons, computed_at = now()"""


class QualityError(ValueError):
    """A quality run was asked for something it cannot do; the message says what."""


@dataclass(frozen=True, slots=True)
class QualitySummary:
    """What one run did. ``flags``: stored, by check; ``flags_dropped``: found beyond
    the caps (``quality.MAX_FLAGS_PER_SERIES``, ``MAX_FLAGS_PER_RUN``), counted only;
    ``unusable``: devices scored below ``quality.USABLE_SCORE`` on ``as_of``;
    ``skipped``: what could not be checked (``unknown_profile``: devices whose profile
    the code does not know, ``unknown_metric``: series of a metric not in the device's
    profile, ``unregistered``: readings of ids that are not devices), with counts."""

    as_of: date
    days: int
    devices: int
    readings: int
    flags: Mapping[str, int]
    flags_dropped: int
    unusable: tuple[str, ...]
    skipped: Mapping[str, int]
    seconds: float


@dataclass(frozen=True, slots=True)
class DeviceQuality:
    device_id: str
    computed_for: date
    score: float
    anomaly_score: float | None
    reasons: list[dict]
    computed_at: datetime

    @property
    def usable(self) -> bool:
        return self.score >= q.USABLE_SCORE


@dataclass(slots=True)
class _Device:
    """What a run keeps of one device after its readings are checked."""

    id: str
    profile: str
    flags: list[q.Flag] = field(default_factory=list)
    days: dict[str, pd.DataFrame] = field(default_factory=dict)  # by metric
    gaps: dict[tuple[str, date], q.Gaps] = field(default_factory=dict)  # (metric, day)
    first: pd.Timestamp | None = None
    last_heard: pd.Timestamp | None = None
    battery: float | None = None
    readings: int = 0


@dataclass(slots=True)
class _Run:
    """The window of a run and what every device's checks need from the fleet."""

    as_of: date
    start: pd.Timestamp
    end: pd.Timestamp
    limit: pd.Timestamp  # the end, or now when the window reaches into the future
    hourly: pd.Series
    references: dict[tuple[str, str], pd.Series]
    counts: Counter = field(default_factory=Counter)  # skipped and dropped

    @property
    def read_from(self) -> pd.Timestamp:
        return self.start - pd.Timedelta(days=q.CONTEXT_DAYS)

    @property
    def days(self) -> pd.DatetimeIndex:
        """Local midnights of the window's days."""
        return pd.date_range(self.start.tz_convert(TZ), self.end.tz_convert(TZ), freq="D",
                             inclusive="left")


def window(as_of: date, days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) in UTC of the ``days`` local days ending with ``as_of``."""
    first = as_of - timedelta(days=days - 1)
    start = pd.Timestamp(first).tz_localize(TZ).tz_convert("UTC")
    end = pd.Timestamp(as_of + timedelta(days=1)).tz_localize(TZ).tz_convert("UTC")
    return start, end


def run_quality(conn: psycopg.Connection, *, as_of: date,
                days: int = q.DEFAULT_DAYS) -> QualitySummary:
    """Check the readings of the ``days`` local days ending with ``as_of``, store the
    flags and each device's score of each of those days; returns what it did."""
    if not 1 <= days <= MAX_DAYS:
        raise QualityError(f"days={days}: a quality run covers 1 to {MAX_DAYS} days; "
                           f"run it again for earlier days")
    began = time.monotonic()
    start, end = window(as_of, days)
    with conn.transaction():
        (now,) = conn.execute("SELECT now()").fetchone()
        registry = {row[0]: row[1:] for row in conn.execute(DEVICES)}
        hourly = _hourly(conn, start - pd.Timedelta(days=q.DRIFT_CONTEXT_DAYS), end)
        run = _Run(as_of, start, end, min(end, pd.Timestamp(now)), hourly,
                   _references(hourly, registry))
        heard_hours: Counter[int] = Counter()
        devices: dict[str, _Device] = {}
        for device_id, series in _stream(conn, run.read_from, end):
            profile = registry.get(device_id, (None,))[0]
            if profile is None:
                run.counts["unregistered"] += 1
            elif profile not in PROFILES:
                run.counts["unknown_profile"] += 1
                logger.warning("device %s has profile %r, which this version does not know: "
                               "its readings are not checked", device_id, profile)
            else:
                devices[device_id] = _check_device(run, device_id, profile, series,
                                                   registry[device_id])
                heard_hours.update(np.unique(_heard(series) // US_PER_HOUR).tolist())
        _add_silent_since(conn, run, devices, registry)
    until = _until(devices, run.limit)
    activity = _activity(heard_hours, len(devices))
    for dev in devices.values():
        if until is not None and dev.last_heard is not None:
            base = min(PROFILES[dev.profile].intervals_s.values())
            dev.flags += q.silences(pd.DatetimeIndex([dev.last_heard]), base_interval_s=base,
                                    until=until)
        silent = q.while_others_report([f for f in dev.flags if f.kind == q.SILENT], activity)
        dev.flags = [f for f in dev.flags if f.kind != q.SILENT] + silent
    scores = _scores(run, devices, until)
    stored, dropped = _write(conn, devices, scores, start, end)
    dropped += run.counts.pop("flags_dropped", 0)
    unusable = tuple(sorted(d for (d, day), (score, _, _) in scores.items()
                            if day == as_of and score < q.USABLE_SCORE))
    summary = QualitySummary(as_of, days, len(devices), sum(d.readings for d in devices.values()),
                             stored, dropped, unusable, dict(run.counts),
                             round(time.monotonic() - began, 3))
    if dropped:
        logger.warning("quality run for %s: %d flags over the caps were counted, not stored "
                       "(devices far from working; see device_quality)", as_of, dropped)
    logger.info("quality run for %s (%d days): %d devices, %d readings, flags %s, "
                "%d unusable, %.1f s", as_of, days, summary.devices, summary.readings,
                dict(stored), len(unusable), summary.seconds)
    return summary


def _hourly(conn: psycopg.Connection, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """Hourly means of the metrics peers share, indexed (device, metric, hour)."""
    rows = conn.execute(HOURLY, (start.to_pydatetime(), end.to_pydatetime(),
                                 HOURLY_METRICS)).fetchall()
    if not rows:
        return pd.Series(dtype=float, index=pd.MultiIndex.from_arrays(
            [[], [], pd.DatetimeIndex([], tz="UTC")], names=["device", "metric", "hour"]))
    frame = pd.DataFrame(rows, columns=["device", "metric", "hour", "mean"])
    frame = frame[np.isfinite(frame["mean"])]
    frame["hour"] = _times(frame["hour"].to_numpy())
    return frame.set_index(["device", "metric", "hour"])["mean"].sort_index()


def _references(hourly: pd.Series, registry: Mapping[str, tuple]
                ) -> dict[tuple[str, str], pd.Series]:
    """(device, metric) -> the peers' hourly median (see ``quality.peer_groups``)."""
    out: dict[tuple[str, str], pd.Series] = {}
    if hourly.empty:
        return out
    with_hourly = set(hourly.index.get_level_values(0))
    groups = q.peer_groups({d: (p, m) for d, (p, m, _, _) in registry.items()
                            if d in with_hourly and p in PROFILES})
    ponded = None
    if "water_level" in hourly.index.get_level_values("metric"):
        level = hourly.xs("water_level", level="metric").unstack("device")
        ponded = level > q.PONDED_MIN_LEVEL_M
    for metric, part in hourly.groupby(level="metric"):
        if metric not in q.DRIFT_TOLERANCE and metric not in q.PEER_TOLERANCE:
            continue  # a paddy's level and soil moisture follow its farmer's water
        wide = part.droplevel("metric").unstack("device")
        if metric == "water_temp" and ponded is not None:
            wide = wide.where(ponded.reindex(index=wide.index, columns=wide.columns,
                                             fill_value=False))
        done: set[tuple[str, ...]] = set()
        for members in groups.values():
            key = tuple(members)
            if key in done:
                continue
            done.add(key)
            cols = [m for m in members if m in wide.columns]
            if len(cols) <= q.MIN_PEERS:
                continue
            ref = q.peer_reference(wide[cols], [c for c in cols if groups.get(c) == members])
            for c in ref.columns:
                out[(c, metric)] = ref[c].dropna()
    return out


def _stream(conn: psycopg.Connection, start: pd.Timestamp, end: pd.Timestamp
            ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """(device, {metric: rows (time us, value, received us)}) for each device in turn."""
    with conn.cursor(name="quality_readings") as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(READINGS, (start.to_pydatetime(), end.to_pydatetime()))
        current, metrics = None, {}
        while rows := cur.fetchmany(FETCH_ROWS):
            ids, names = [r[0] for r in rows], [r[1] for r in rows]
            data = np.array([r[2:] for r in rows], dtype=float)
            k = 0
            for (device_id, metric), group in itertools.groupby(zip(ids, names, strict=True)):
                n = sum(1 for _ in group)
                if device_id != current:
                    if current is not None:
                        yield current, {m: np.concatenate(v) for m, v in metrics.items()}
                    current, metrics = device_id, {}
                metrics.setdefault(metric, []).append(data[k:k + n])
                k += n
        if current is not None:
            yield current, {m: np.concatenate(v) for m, v in metrics.items()}


def _heard(series: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([a[:, 2] for a in series.values()])


def _times(us: np.ndarray) -> pd.DatetimeIndex:
    """Times from microseconds since 1970 (exact: PostgreSQL keeps microseconds)."""
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(us, dtype=np.int64), unit="us", utc=True))


def _check_device(run: _Run, device_id: str, profile: str, series: Mapping[str, np.ndarray],
                  place: tuple) -> _Device:
    spec = PROFILES[profile]
    dev = _Device(device_id, profile)
    _, _, lat, lon = place
    ponded = None
    if "water_level" in series:
        level = series["water_level"]
        finite = np.isfinite(level[:, 1])
        means = q.hourly_means(pd.Series(level[finite, 1], index=_times(level[finite, 0])))
        own = _own_hourly(run.hourly, device_id, "water_level")
        ponded = pd.concat([own[~own.index.isin(means.index)], means]).sort_index() \
            > q.PONDED_MIN_LEVEL_M
    for metric, rows in series.items():
        dev.readings += len(rows)
        if metric not in spec.intervals_s:
            run.counts["unknown_metric"] += 1
            continue
        times = _times(rows[:, 0])
        history = _own_hourly(run.hourly, device_id, metric)
        result = q.check_series(
            pd.Series(rows[:, 1], index=times), pd.Series(_times(rows[:, 2]), index=times),
            metric=metric, interval_s=spec.intervals_s[metric],
            reference=run.references.get((device_id, metric)),
            history=history if len(history) else None, ponded=ponded, **_site(lat, lon))
        dev.flags += _capped(result.flags, run.counts)
        dev.days[metric] = result.days
        if result.first is not None and (dev.first is None or result.first < dev.first):
            dev.first = result.first
        if metric == "battery":
            dev.battery = result.last_value
        spans = {day.date(): (max(day, times[0]), min(day + pd.Timedelta(days=1), run.limit))
                 for day in run.days}
        spans = {d: span for d, span in spans.items() if span[1] > span[0]}
        found = q.gaps_by_span(times, interval_s=spec.intervals_s[metric],
                               spans=list(spans.values()))
        dev.gaps.update(((metric, d), g) for d, g in zip(spans, found, strict=True))
    heard = _times(np.unique(_heard(series)))
    base = min(spec.intervals_s.values()) if spec.intervals_s else 3600
    dev.flags += q.silences(heard, base_interval_s=base)
    dev.last_heard = heard[-1] if len(heard) else None
    return dev


def _site(lat: float | None, lon: float | None) -> dict[str, float]:
    if lat is None or lon is None or not (np.isfinite(lat) and np.isfinite(lon)):
        return {}
    return {"latitude_deg": float(lat), "longitude_deg": float(lon)}


def _own_hourly(hourly: pd.Series, device_id: str, metric: str) -> pd.Series:
    try:
        return hourly.loc[(device_id, metric)]
    except KeyError:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))


def _capped(flags: list[q.Flag], dropped: Counter) -> list[q.Flag]:
    if len(flags) <= q.MAX_FLAGS_PER_SERIES:
        return flags
    dropped["flags_dropped"] += len(flags) - q.MAX_FLAGS_PER_SERIES
    longest_first = sorted(flags, key=lambda f: (f.start == f.end, f.start))
    return sorted(longest_first[:q.MAX_FLAGS_PER_SERIES], key=lambda f: f.start)


def _add_silent_since(conn: psycopg.Connection, run: _Run, devices: dict[str, _Device],
                      registry: Mapping[str, tuple]) -> None:
    """Devices heard in the ``DEAD_LOOKBACK_DAYS`` before the run's readings, not since."""
    first_day = run.read_from.tz_convert(TZ).date()
    lookback = first_day - timedelta(days=q.DEAD_LOOKBACK_DAYS)
    for (device_id,) in conn.execute(HEARD_BEFORE, (lookback, first_day + timedelta(days=1))):
        profile = registry.get(device_id, (None,))[0]
        if device_id in devices or profile not in PROFILES or not PROFILES[profile].metrics:
            continue
        since = pd.Timestamp(lookback).tz_localize(TZ)
        (last,) = conn.execute(LAST_HEARD, (device_id, since.to_pydatetime(),
                                            run.read_from.to_pydatetime())).fetchone()
        if last is not None:
            devices[device_id] = _Device(device_id, profile, last_heard=pd.Timestamp(last))


def _until(devices: Mapping[str, _Device], end: pd.Timestamp) -> pd.Timestamp | None:
    """The time the fleet was last heard, at most ``end``: silences end there."""
    heard = [d.last_heard for d in devices.values() if d.last_heard is not None]
    return min(max(heard), end) if heard else None


def _activity(heard_hours: Mapping[int, int], devices: int) -> pd.Series:
    if not heard_hours or not devices:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    hours = np.arange(min(heard_hours), max(heard_hours) + 1)
    share = np.array([heard_hours.get(int(h), 0) for h in hours]) / devices
    return pd.Series(share, index=_times(hours * US_PER_HOUR))


def _scores(run: _Run, devices: Mapping[str, _Device], until: pd.Timestamp | None
            ) -> dict[tuple[str, date], tuple[float, float | None, list[dict]]]:
    """(device, day) -> (score, anomaly score, reasons) for each local day of the window
    on which the device was expected to report (from its first reading on)."""
    coverage: dict[tuple[str, date], dict[str, float]] = {}
    features: dict[str, dict[tuple[str, date], dict[str, float]]] = {}
    for dev in devices.values():
        spec = PROFILES[dev.profile]
        stats = {m: frame.to_dict("index") for m, frame in dev.days.items()}
        for day in run.days:
            seen_from = max(day, dev.first) if dev.first is not None else day
            seen_to = min(day + pd.Timedelta(days=1), until if until is not None else run.limit)
            if seen_to <= seen_from:
                continue
            key, cov, feat = (dev.id, day.date()), {}, {}
            for metric, interval in spec.intervals_s.items():
                if metric in spec.optional and metric not in stats:
                    continue  # a sensor this device does not have
                expected = (seen_to - seen_from).total_seconds() / interval
                row = stats[metric].get(day.tz_localize(None)) if metric in stats else None
                good = float(row["good"]) if row is not None else 0.0
                cov[metric] = min(good / expected, 1.0) if expected >= 1 else 1.0
                g = dev.gaps.get((metric, key[1]))
                feat[f"{metric}.gap_share"] = g.missing / g.expected if g and g.expected \
                    else 1.0 - cov[metric]
                for name in q.FEATURES[1:]:
                    value = float(row[name]) if row is not None else 0.0
                    feat[f"{metric}.{name}"] = value if np.isfinite(value) else 0.0
            coverage[key] = cov
            features.setdefault(dev.profile, {})[key] = feat
    anomaly: dict[tuple[str, date], float] = {}
    for rows in features.values():
        frame = pd.DataFrame.from_dict(rows, orient="index")
        frame.index = pd.MultiIndex.from_tuples(frame.index, names=["device", "day"])
        anomaly.update(q.anomaly_scores(frame).dropna().to_dict())
    out = {}
    last_day = run.days[-1].date()
    for key, cov in coverage.items():
        dev = devices[key[0]]
        day_start = pd.Timestamp(key[1]).tz_localize(TZ)
        day_end = day_start + pd.Timedelta(days=1)
        touching = [f for f in dev.flags if f.start < day_end and f.end >= day_start]
        gaps = {m: g for (m, d), g in dev.gaps.items() if d == key[1]}
        a = anomaly.get(key)
        reasons = q.day_reasons(touching, gaps=gaps, anomaly=a, profile=dev.profile,
                                battery_pct=dev.battery if key[1] == last_day else None)
        out[key] = (q.day_score(cov, a), a, reasons)
    return out


def _stage_rows(devices: Mapping[str, _Device], start: pd.Timestamp, end: pd.Timestamp
                ) -> tuple[list[tuple], int]:
    rows, dropped = [], 0
    for dev in sorted(devices.values(), key=lambda d: d.id):
        for f in sorted(dev.flags, key=lambda f: (f.metric, f.kind, f.start)):
            if f.end < start or f.start >= end:
                continue
            if len(rows) >= q.MAX_FLAGS_PER_RUN:
                dropped += 1
                continue
            rows.append((dev.id, f.metric, f.kind, f.start.to_pydatetime(),
                         f.end.to_pydatetime(), f.readings, f.excludes, Jsonb(dict(f.detail))))
    return rows, dropped


def _write(conn: psycopg.Connection, devices: Mapping[str, _Device], scores: Mapping,
           start: pd.Timestamp, end: pd.Timestamp) -> tuple[dict[str, int], int]:
    rows, dropped = _stage_rows(devices, start, end)
    params = {"devices": sorted(devices), "start": start.to_pydatetime(),
              "end": end.to_pydatetime()}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_ID,))
        conn.execute(STAGE)
        with conn.cursor() as cur:
            with cur.copy(COPY_STAGE) as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(DELETE_OWN, params)
            cur.execute(TRUNCATE, params)
            cur.execute(EXTEND, params)
            cur.execute(INSERT, params)
            cur.executemany(UPSERT_SCORE, [
                (d, day, score, None if a is None else round(float(a), 4), Jsonb(reasons))
                for (d, day), (score, a, reasons) in sorted(scores.items())])
    return dict(Counter(r[2] for r in rows)), dropped


def usable_devices(conn: psycopg.Connection, as_of: date, profile: str | None = None
                   ) -> set[str]:
    """Devices whose score of ``as_of`` is at least ``quality.USABLE_SCORE`` (of
    ``profile`` only, when given). A device not scored that day is not usable."""
    rows = conn.execute(
        """SELECT q.device_id FROM device_quality q JOIN devices d ON d.id = q.device_id
           WHERE q.computed_for = %s AND q.score >= %s AND (%s::text IS NULL OR d.profile = %s)""",
        (as_of, q.USABLE_SCORE, profile, profile)).fetchall()
    return {r[0] for r in rows}


def device_score(conn: psycopg.Connection, device_id: str, as_of: date) -> DeviceQuality | None:
    """The stored score of ``device_id`` for ``as_of``, with its reasons; None when the
    device was not scored that day."""
    row = conn.execute(
        """SELECT device_id, computed_for, score, anomaly_score, reasons, computed_at
           FROM device_quality WHERE device_id = %s AND computed_for = %s""",
        (device_id, as_of)).fetchone()
    return DeviceQuality(*row) if row else None
