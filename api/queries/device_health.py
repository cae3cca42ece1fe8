"""Device health: when a device was last heard, how regularly it reports
against its profile's intervals, where its battery is heading, its radio,
its clock, what quality control flagged, and the alerts drawn from them.

One call reads the health of any number of devices in a fixed number of
queries (:func:`health_of`). Clock skew is the median of measurement time
minus arrival over a device's latest readings, and over its latest records
that ingest refused for their time: a clock far enough ahead (a device
sending Japan local time as UTC is 9 h ahead) has every reading refused, so
only the rejects show it. Reasons carry Japanese text first, English beside
(api/queries/field_status.py Reason); docs/device-health.md lists each code.
"""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from agri.analytics.quality import CLOCK_AHEAD_S
from agri.api.accounts import User
from agri.api.queries import access, conditions
from agri.api.queries.field_status import Reason
from agri.api.queries.series import iso
from agri.clock import TZ, UTC_OFFSET_S
from agri.devices.profiles import METRICS, PROFILES, RADIO_METRICS

# --- Reporting regularity ------------------------------------------------------------------
REGULARITY_WINDOW_S = 24 * 3600  # the last day, by measurement time
REGULARITY_MIN_SHARE = 0.8  # a metric with a reading in fewer of its intervals has gaps
# Not heard (arrival of its newest stored reading) for more than this many of
# its shortest interval: silent, as the device list calls it stale.
SILENT_INTERVALS = conditions.STALE_INTERVALS

# --- Battery -------------------------------------------------------------------------------
BATTERY = "battery"
BATTERY_WINDOW_DAYS = 7
BATTERY_MIN_READINGS = 3
BATTERY_MIN_SPAN_S = 12 * 3600  # a trend needs readings at least this far apart
# A slope above this (%/day) is not falling: 0.01 %/day empties a full battery in 27 years.
BATTERY_FALLING_PCT_PER_DAY = -0.01
BATTERY_EMPTY_WITHIN_DAYS = 14  # predicted empty sooner: running out (warning)
BATTERY_CRITICAL_DAYS = 3  # predicted empty sooner: running out (critical)

# --- Radio (LoRaWAN uplink metadata, best gateway) -----------------------------------------
# Ingest keeps them as readings (devices/profiles.py RADIO_METRICS).
RADIO_UNITS = {name: METRICS[name].unit for name in RADIO_METRICS}

# --- Clock ---------------------------------------------------------------------------------
SKEW_READINGS = 20  # latest readings per metric read for the skew
SKEW_SAMPLES = 20  # the most recently received of those (and of the time rejects) count
SKEW_MIN_SAMPLES = 3
SKEW_AGREE_S = 180.0  # samples this close to the median agree with it ...
SKEW_AGREE_SHARE = 0.8  # ... and this share must, or the offsets are delivery delays
WHOLE_HOUR_TOLERANCE_S = 180.0  # within this of a whole number of hours (>= 1) ...
JAPAN_OFFSET_H = UTC_OFFSET_S // 3600  # ... of +9 h: Japan local time sent as UTC
# Ahead of arrival by more than quality control's CLOCK_AHEAD_S is the clock;
# behind, delivery and buffering explain up to this much.
CLOCK_BEHIND_S = 3600.0
REJECT_WINDOW = timedelta(days=7)  # rejects read for the skew: this recent ...
REJECT_SCAN = 200  # ... and at most this many of a device's latest
# Ingest's wording of a refused time (ingest/validate.py time_problem).
_AHEAD = re.compile(r"(?:device event: |flight record: )?measurement time is (-?\d+) s ahead "
                    r"of the server clock")
_OLD = re.compile(r"(?:device event: |flight record: )?measurement time is (\d+(?:\.\d+)?) "
                  r"days old")

# --- Quality control -----------------------------------------------------------------------
FLAG_WINDOW = timedelta(days=3)  # flags ending this recently (a daily run checks 3 days)

SEVERITY = {"red": "critical", "yellow": "warning", "grey": "info"}
RANK = {"critical": 2, "warning": 1, "info": 0}
STATUS = {2: "critical", 1: "warning", 0: "ok"}


def _alert(reason: Reason) -> dict:
    return {**reason.to_json(), "severity": SEVERITY[reason.colour]}


def _signed_hours(h: int) -> str:
    return f"{h:+d} h"


def _duration(s: float) -> tuple[str, str]:
    """(ja, en) of a duration in its largest fitting unit."""
    a = abs(s)
    if a >= 86400:
        return f"{a / 86400:.1f} 日", f"{a / 86400:.1f} days"
    if a >= 3600:
        return f"{a / 3600:.1f} 時間", f"{a / 3600:.1f} h"
    return f"{a / 60:.0f} 分", f"{a / 60:.0f} min"


# --- Judgements (pure) ---------------------------------------------------------------------

def clock_reason(skew_s: float) -> Reason | None:
    """Why a consistent clock offset ``skew_s`` (measurement minus arrival)
    matters, or None when it does not."""
    hours = round(skew_s / 3600)
    if hours != 0 and abs(skew_s - hours * 3600) <= WHOLE_HOUR_TOLERANCE_S:
        if hours == JAPAN_OFFSET_H:
            why_ja, why_en = ("日本時間を UTC として送っています",
                              "the device probably sends Japan local time as UTC")
        elif hours == -JAPAN_OFFSET_H:
            why_ja, why_en = ("UTC の時刻に日本のオフセット (+09:00) を付けて送っています",
                              "the device probably sends UTC time marked as Japan time")
        else:
            why_ja, why_en = ("現地時刻を UTC として送っているか、タイムゾーンの設定が違います",
                              "the device probably sends local time as UTC, or has the wrong "
                              "time zone")
        return Reason("clock_whole_hours", "red",
                      f"時計が {_signed_hours(hours)} ずれています: おそらく{why_ja}。"
                      f"UTC (またはオフセット付き) で送ってください",
                      f"clock off by {_signed_hours(hours)}: {why_en}; send UTC (or an offset)")
    if skew_s > CLOCK_AHEAD_S or skew_s < -CLOCK_BEHIND_S:
        ja, en = _duration(skew_s)
        way_ja, way_en = ("進んで", "ahead") if skew_s > 0 else ("遅れて", "behind")
        return Reason("clock_skew", "yellow",
                      f"時計が {ja}{way_ja}います: 機器の時計を合わせてください (NTP・GPS・"
                      f"ネットワーク時刻)",
                      f"clock {en} {way_en}: set the device clock (NTP, GPS or network time)")
    return None


def skew(samples: list[tuple[datetime, float]]) -> tuple[dict, Reason | None]:
    """The clock of ``samples`` (received_at, measurement minus arrival in s):
    the median of the latest SKEW_SAMPLES, and the reason it matters when
    they agree on it."""
    latest = sorted(samples, key=lambda s: s[0], reverse=True)[:SKEW_SAMPLES]
    offsets = [s[1] for s in latest]
    out = {"skew_s": None, "samples": len(offsets), "agreement": None, "whole_hours": None}
    if len(offsets) < SKEW_MIN_SAMPLES:
        return out, None
    median = statistics.median(offsets)
    agree = sum(abs(o - median) <= SKEW_AGREE_S for o in offsets) / len(offsets)
    out.update(skew_s=round(median, 1), agreement=round(agree, 3))
    if agree < SKEW_AGREE_SHARE:
        return out, None  # offsets that vary are delivery delays, not a clock
    reason = clock_reason(median)
    if reason is not None and reason.code == "clock_whole_hours":
        out["whole_hours"] = round(median / 3600)
    return out, reason


def reject_offset(reason: str) -> float | None:
    """Measurement minus arrival (s) that ingest refused a record for, from its reason."""
    if (m := _AHEAD.match(reason)) is not None:
        return float(m.group(1))
    if (m := _OLD.match(reason)) is not None:
        return -float(m.group(1)) * 86400
    return None


def battery_trend(*, slope: float | None, intercept: float | None, readings: int,
                  span_s: float, now: datetime) -> tuple[float | None, str | None]:
    """(slope %/day, the Asia/Tokyo date the fitted line reaches 0 % or None
    when not falling) of a least-squares fit whose x is days since ``now``."""
    if slope is None or intercept is None or readings < BATTERY_MIN_READINGS or \
            span_s < BATTERY_MIN_SPAN_S:
        return None, None
    if slope >= BATTERY_FALLING_PCT_PER_DAY:
        return round(slope, 3), None
    empty = now + timedelta(days=-intercept / slope)
    return round(slope, 3), empty.astimezone(TZ).date().isoformat()


# --- Queries -------------------------------------------------------------------------------

_DEVICES = f"""SELECT d.id, d.profile, d.field_id, d.revoked_at FROM devices d
WHERE {access.DEVICE_VISIBLE}
  AND (%(id)s::text IS NULL OR d.id = %(id)s)
  AND (%(id)s::text IS NOT NULL OR d.revoked_at IS NULL)
  AND (%(cursor)s::text IS NULL OR d.id > %(cursor)s)
ORDER BY d.id LIMIT %(limit)s"""

# The latest readings of each (device, metric) by measurement time, however
# far ahead (a wrong clock is what is looked for).
_LATEST = """SELECT k.device_id, k.metric, r.time, r.received_at, r.value
FROM unnest(%(devices)s::text[], %(metrics)s::text[]) AS k(device_id, metric)
CROSS JOIN LATERAL (
    SELECT time, received_at, value FROM readings
    WHERE device_id = k.device_id AND metric = k.metric
    ORDER BY time DESC LIMIT %(n)s) r"""

# Per (device, metric, interval) over the window: readings, intervals with a
# reading (slots aligned to the window's start), the first reading and the
# longest gap between readings or from the last one to now.
_REGULARITY = """SELECT k.device_id, k.metric, count(g.time),
       count(DISTINCT least(floor(extract(epoch FROM g.time - %(start)s) / k.interval_s),
                            %(window)s / k.interval_s - 1)) FILTER (WHERE g.time IS NOT NULL),
       min(g.time), max(extract(epoch FROM g.gap))::float8,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY g.value)
FROM unnest(%(devices)s::text[], %(metrics)s::text[], %(intervals)s::int[])
     AS k(device_id, metric, interval_s)
LEFT JOIN LATERAL (
    SELECT time, value, lead(time, 1, %(now)s) OVER (ORDER BY time) - time AS gap
    FROM readings
    WHERE device_id = k.device_id AND metric = k.metric
      AND time > %(start)s AND time <= %(now)s) g ON true
GROUP BY k.device_id, k.metric"""

# Least squares of the battery over the window; x in days since now.
_BATTERY = """SELECT device_id, regr_slope(value, x), regr_intercept(value, x), count(*),
       extract(epoch FROM max(time) - min(time))::float8
FROM (SELECT device_id, value, time, extract(epoch FROM time - %(now)s)::float8 / 86400 AS x
      FROM readings
      WHERE device_id = ANY(%(devices)s) AND metric = %(metric)s
        AND time > %(start)s AND time <= %(now)s) b
GROUP BY device_id"""

_FLAGS = """SELECT device_id, metric, kind, count(*), sum(readings), max(to_time), bool_or(excludes)
FROM reading_flags WHERE device_id = ANY(%(devices)s) AND to_time > %(since)s
GROUP BY device_id, metric, kind ORDER BY device_id, metric, kind"""

# The reasons of each device's latest rejects (bounded: a device may send
# many) that say a time was refused.
_TIME_REJECTS = """SELECT k.id, r.received_at, r.reason
FROM unnest(%(devices)s::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT received_at, reason FROM rejects
    WHERE device_id = k.id AND received_at > %(since)s
    ORDER BY received_at DESC LIMIT %(scan)s) r
WHERE r.reason LIKE 'measurement time is %%' OR r.reason LIKE 'device event: measurement%%'
   OR r.reason LIKE 'flight record: measurement%%'"""


async def visible_devices(conn: AsyncConnection, user: User, *, device_id: str | None = None,
                          cursor: str | None = None, limit: int = 1) -> list[tuple]:
    """(id, profile, field_id, revoked_at) of the device ``device_id`` if the
    user may see it, else of the user's live visible devices after
    ``cursor`` in id order (at most ``limit``)."""
    cur = await conn.execute(_DEVICES, {"id": device_id, "cursor": cursor, "limit": limit,
                                        **access.who(user)})
    return await cur.fetchall()


async def health_of(conn: AsyncConnection, devices: list[tuple], *,
                    max_future_s: float) -> list[dict]:
    """The health of ``devices`` (visible_devices' rows), in their order.
    Readings further ahead than ingest accepts (``max_future_s``) count for
    the clock only."""
    if not devices:
        return []
    now = datetime.now(UTC)
    ids = [d[0] for d in devices]
    metric_pairs = [(d[0], m, i) for d in devices for m, i in PROFILES[d[1]].intervals_s.items()]
    radio_pairs = [(d[0], m) for d in devices if PROFILES[d[1]].metrics for m in RADIO_UNITS]
    latest_pairs = [(d, m) for d, m, _ in metric_pairs] + radio_pairs

    cur = await conn.execute(_LATEST, {"devices": [d for d, _ in latest_pairs],
                                       "metrics": [m for _, m in latest_pairs],
                                       "n": SKEW_READINGS})
    latest: dict[str, list[tuple]] = {}
    for device_id, metric, t, received, value in await cur.fetchall():
        latest.setdefault(device_id, []).append((metric, t, received, value))

    # Radio medians only for devices that have radio readings at all.
    heard_radio = {(d, m) for d, rows in latest.items() for m, *_ in rows if m in RADIO_UNITS}
    windowed = metric_pairs + [(d, m, REGULARITY_WINDOW_S) for d, m in radio_pairs
                               if (d, m) in heard_radio]
    start = now - timedelta(seconds=REGULARITY_WINDOW_S)
    cur = await conn.execute(_REGULARITY, {
        "devices": [p[0] for p in windowed], "metrics": [p[1] for p in windowed],
        "intervals": [p[2] for p in windowed], "start": start, "now": now,
        "window": REGULARITY_WINDOW_S})
    window = {(r[0], r[1]): r[2:] for r in await cur.fetchall()}

    with_battery = [d[0] for d in devices if BATTERY in PROFILES[d[1]].intervals_s]
    trends = {}
    if with_battery:
        cur = await conn.execute(_BATTERY, {
            "devices": with_battery, "metric": BATTERY, "now": now,
            "start": now - timedelta(days=BATTERY_WINDOW_DAYS)})
        trends = {r[0]: r[1:] for r in await cur.fetchall()}

    cur = await conn.execute(_FLAGS, {"devices": ids, "since": now - FLAG_WINDOW})
    flags: dict[str, list[dict]] = {}
    for device_id, metric, kind, n, readings, last, excludes in await cur.fetchall():
        flags.setdefault(device_id, []).append({
            "metric": metric, "kind": kind, "flags": n, "readings": int(readings or 0),
            "until": iso(last), "excludes": excludes})

    cur = await conn.execute(_TIME_REJECTS, {"devices": ids, "since": now - REJECT_WINDOW,
                                             "scan": REJECT_SCAN})
    refused: dict[str, list[tuple[datetime, float]]] = {}
    for device_id, received, reason in await cur.fetchall():
        offset = reject_offset(reason)
        if offset is not None:
            refused.setdefault(device_id, []).append((received, offset))

    return [_health(d, now=now, latest=latest.get(d[0], []), window=window,
                    trend=trends.get(d[0]), flags=flags.get(d[0], []),
                    refused=refused.get(d[0], []), max_future_s=max_future_s)
            for d in devices]


def _health(device: tuple, *, now: datetime, latest: list[tuple], window: dict,
            trend: tuple | None, flags: list[dict], refused: list[tuple[datetime, float]],
            max_future_s: float) -> dict:
    device_id, profile_name, field_id, revoked_at = device
    intervals = PROFILES[profile_name].intervals_s
    reasons: list[Reason] = []
    limit = now + timedelta(seconds=max_future_s)
    stored = [r for r in latest if r[0] in intervals]

    # Last seen: arrival, and measurement time as far ahead as ingest accepts.
    received = max((r[2] for r in stored), default=None)
    measured = max((r[1] for r in stored if r[1] <= limit), default=None)
    age = None if received is None else max(0.0, (now - received).total_seconds())
    last_seen = {"received_at": received and iso(received),
                 "measured_at": measured and iso(measured),
                 "age_s": None if age is None else round(age, 1)}
    if intervals and revoked_at is None:
        shortest = min(intervals.values())
        if age is None:
            reasons.append(Reason("never_heard", "grey", "まだデータが届いていません",
                                  "nothing stored from this device yet"))
        elif age > SILENT_INTERVALS * shortest:
            ja, en = _duration(age)
            colour = "red" if age > conditions.OFFLINE_S else "yellow"
            reasons.append(Reason(
                "silent", colour,
                f"{ja}データが届いていません (報告間隔 {shortest // 60} 分の "
                f"{age / shortest:.0f} 回分): 電源・電波・機器を確認してください",
                f"not heard for {en} ({age / shortest:.0f} reporting intervals of "
                f"{shortest // 60} min): check power, radio and the device"))

    # Regularity over the window.
    regularity = {}
    gaps = []
    for metric, interval in intervals.items():
        n, slots, first, gap, _ = window.get((device_id, metric), (0, 0, None, None, None))
        expected = REGULARITY_WINDOW_S // interval
        longest = REGULARITY_WINDOW_S if first is None else max(
            gap or 0.0, (first - (now - timedelta(seconds=REGULARITY_WINDOW_S))).total_seconds())
        share = slots / expected
        regularity[metric] = {"interval_s": interval, "expected": expected, "received": n,
                              "intervals_with_reading": slots, "share": round(share, 3),
                              "longest_gap_s": round(longest, 1)}
        if 0 < share < REGULARITY_MIN_SHARE:
            gaps.append((metric, share))
    if gaps and revoked_at is None:
        listed = ", ".join(f"{m} {s:.0%}" for m, s in gaps)
        reasons.append(Reason(
            "reporting_gaps", "yellow",
            f"過去24時間の報告に欠けがあります ({listed}): 電波や電源を確認してください",
            f"gaps in the last 24 h ({listed} of intervals with a reading): check radio and "
            f"power"))

    # Battery: latest reading and trend.
    battery = None
    if BATTERY in intervals:
        last = max((r for r in stored if r[0] == BATTERY and r[1] <= limit),
                   key=lambda r: r[1], default=None)
        slope, empty = battery_trend(
            slope=trend and trend[0], intercept=trend and trend[1],
            readings=trend[2] if trend else 0, span_s=float(trend[3] or 0) if trend else 0.0,
            now=now)
        battery = {"value": None if last is None else last[3],
                   "unit": METRICS[BATTERY].unit,
                   "measured_at": None if last is None else iso(last[1]),
                   "slope_pct_per_day": slope, "readings_7d": trend[2] if trend else 0,
                   "predicted_empty": empty}
        if revoked_at is None:
            reasons.extend(_battery_reasons(last and last[3], empty, now))

    # Radio.
    radio = None
    radio_rows = [r for r in latest if r[0] in RADIO_UNITS]
    if radio_rows:
        radio = {}
        for metric, unit in RADIO_UNITS.items():
            rows = [r for r in radio_rows if r[0] == metric]
            if not rows:
                continue
            newest = max(rows, key=lambda r: r[1])
            n, _, _, _, median = window.get((device_id, metric), (0, 0, None, None, None))
            radio[metric] = {"unit": unit, "latest": newest[3], "measured_at": iso(newest[1]),
                             "median_24h": median, "readings_24h": n}

    # Clock: stored readings and refused times together.
    clock, clock_why = skew([(r[2], (r[1] - r[2]).total_seconds()) for r in stored] + refused)
    clock["refused_24h"] = sum(1 for r in refused if (now - r[0]).total_seconds() <=
                               REGULARITY_WINDOW_S)
    clock["reason"] = clock_why and clock_why.to_json()
    if clock_why is not None and revoked_at is None:
        reasons.append(clock_why)

    if flags and revoked_at is None:
        listed = ", ".join(sorted({f"{f['metric']} {f['kind']}" for f in flags}))
        reasons.append(Reason(
            "quality_flagged", "yellow",
            f"品質チェックで異常が見つかりました ({listed}): センサーと設置を確認してください",
            f"flagged by quality control ({listed}): check the sensor and its mounting"))

    alerts = sorted((_alert(r) for r in reasons), key=lambda a: -RANK[a["severity"]])
    status = "revoked" if revoked_at is not None else STATUS[
        max((RANK[a["severity"]] for a in alerts), default=0)]
    return {"device": device_id, "profile": profile_name, "field": field_id,
            "revoked_at": revoked_at and iso(revoked_at), "as_of": iso(now), "status": status,
            "last_seen": last_seen,
            "regularity": {"window_s": REGULARITY_WINDOW_S, "metrics": regularity},
            "battery": battery, "radio": radio, "clock": clock, "quality_flags": flags,
            "alerts": alerts}


def _battery_reasons(value: float | None, empty: str | None, now: datetime) -> list[Reason]:
    out = []
    if value is not None and value < conditions.BATTERY_LOW_PCT:
        colour = "red" if value < conditions.BATTERY_EMPTY_PCT else "yellow"
        out.append(Reason("battery_low", colour,
                          f"電池残量が {value:.0f}% です: 電池を交換・充電してください",
                          f"battery at {value:.0f} %: replace or charge it"))
    if empty is not None:
        days = (datetime.fromisoformat(empty).date() - now.astimezone(TZ).date()).days
        if days <= BATTERY_EMPTY_WITHIN_DAYS:
            colour = "red" if days <= BATTERY_CRITICAL_DAYS else "yellow"
            out.append(Reason("battery_running_out", colour,
                              f"電池は {empty} ごろに切れる見込みです: 早めに交換・充電して"
                              f"ください",
                              f"battery predicted empty around {empty}: replace or charge it "
                              f"soon"))
    return out
