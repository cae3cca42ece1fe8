"""The rules over the database: each function reads what its rule judges
and returns the conditions it finds (store.Finding); :func:`on_readings`
and :func:`scheduled` run them and bring the open alerts in line."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import psycopg

from agri.alerts import rules, store
from agri.alerts.store import Finding
from agri.api.queries.device_health import BATTERY_WINDOW_DAYS, battery_trend
from agri.devices.profiles import PROFILES

logger = logging.getLogger(__name__)

# --- Rules on new readings --------------------------------------------------------------

# Each paddy sensor's latest level with the band of its day, the start of the
# run of readings on the same side (outside the band, or at or below the soil)
# it belongs to.
_WATER = """
SELECT d.id, d.field_id, r.time, r.value, b.low_m, b.high_m, b.day,
       (SELECT min(o.time) FROM readings o
        WHERE o.device_id = d.id AND o.metric = %(metric)s AND o.time <= r.time
          AND o.time > coalesce(inb.t, r.time - %(lookback)s)) AS out_since,
       (SELECT min(o.time) FROM readings o
        WHERE o.device_id = d.id AND o.metric = %(metric)s AND o.time <= r.time
          AND o.time > coalesce(wet.t, r.time - %(lookback)s)) AS dry_since
FROM devices d
CROSS JOIN LATERAL (SELECT time, value FROM readings
                    WHERE device_id = d.id AND metric = %(metric)s
                    ORDER BY time DESC LIMIT 1) r
JOIN field_water_bands b ON b.field_id = d.field_id
                        AND b.day = (r.time AT TIME ZONE 'Asia/Tokyo')::date
CROSS JOIN LATERAL (
    SELECT max(o.time) AS t FROM readings o
    JOIN field_water_bands ob ON ob.field_id = d.field_id
                             AND ob.day = (o.time AT TIME ZONE 'Asia/Tokyo')::date
    WHERE o.device_id = d.id AND o.metric = %(metric)s AND o.time <= r.time
      AND o.time > r.time - %(lookback)s AND o.value BETWEEN ob.low_m AND ob.high_m) inb
CROSS JOIN LATERAL (
    SELECT max(o.time) AS t FROM readings o
    WHERE o.device_id = d.id AND o.metric = %(metric)s AND o.time <= r.time
      AND o.time > r.time - %(lookback)s AND o.value > %(soil)s) wet
WHERE d.id = ANY(%(devices)s) AND d.revoked_at IS NULL AND d.field_id IS NOT NULL
  AND d.profile = %(profile)s"""


def water(conn: psycopg.Connection, devices: list[str]) -> tuple[list[Finding], list[Finding]]:
    """(water-out-of-band, water-gone) findings of these paddy sensors."""
    rows = conn.execute(_WATER, {"metric": rules.WATER_LEVEL, "devices": devices,
                                 "lookback": rules.OUT_OF_BAND_LOOKBACK,
                                 "soil": rules.SOIL_SURFACE_M,
                                 "profile": rules.PADDY_PROFILE}).fetchall()
    out_of_band, gone = [], []
    for device, field, t, value, low, high, day, out_since, dry_since in rows:
        evidence = {"level_m": round(value, 3), "low_m": low, "high_m": high,
                    "day": day.isoformat(), "device_id": device}
        if low > 0 and value <= rules.SOIL_SURFACE_M:
            gone.append(Finding(rules.key(rules.WATER_GONE, field, device), rules.WATER_GONE,
                                dry_since or t, field_id=field, device_id=device,
                                evidence={**evidence, "since": (dry_since or t).isoformat()}))
        if not low <= value <= high and out_since is not None \
                and t - out_since > rules.OUT_OF_BAND_FOR:
            out_of_band.append(Finding(
                rules.key(rules.WATER_OUT_OF_BAND, field, device), rules.WATER_OUT_OF_BAND,
                out_since + rules.OUT_OF_BAND_FOR, field_id=field, device_id=device,
                evidence={**evidence, "since": out_since.isoformat(),
                          "hours": round((t - out_since).total_seconds() / 3600, 1)}))
    return out_of_band, gone


_BATTERY = """
SELECT d.id, d.field_id, r.time, r.value, s.slope, s.intercept, s.n, s.span_s
FROM devices d
CROSS JOIN LATERAL (SELECT time, value FROM readings
                    WHERE device_id = d.id AND metric = %(metric)s
                    ORDER BY time DESC LIMIT 1) r
CROSS JOIN LATERAL (
    SELECT regr_slope(value, x) AS slope, regr_intercept(value, x) AS intercept,
           count(*) AS n, extract(epoch FROM max(time) - min(time))::float8 AS span_s
    FROM (SELECT value, time, extract(epoch FROM time - %(now)s)::float8 / 86400 AS x
          FROM readings WHERE device_id = d.id AND metric = %(metric)s
            AND time > %(start)s AND time <= %(now)s) b) s
WHERE d.id = ANY(%(devices)s) AND d.revoked_at IS NULL"""


def battery(conn: psycopg.Connection, devices: list[str], *, now: datetime) -> list[Finding]:
    rows = conn.execute(_BATTERY, {"metric": "battery", "devices": devices, "now": now,
                                   "start": now - timedelta(days=BATTERY_WINDOW_DAYS)}
                        ).fetchall()
    out = []
    for device, field, t, value, slope, intercept, n, span_s in rows:
        slope, empty = battery_trend(slope=slope, intercept=intercept, readings=n,
                                     span_s=span_s or 0.0, now=now)
        soon = empty is not None and (date.fromisoformat(empty) - now.date()).days \
            <= rules.BATTERY_EMPTY_WITHIN_DAYS
        if value <= rules.BATTERY_LOW_PCT or soon:
            out.append(Finding(rules.key(rules.BATTERY_LOW, device), rules.BATTERY_LOW, t,
                               field_id=field, device_id=device,
                               evidence={"battery_pct": round(value, 1),
                                         "slope_pct_per_day": slope, "empty_on": empty}))
    return out


def on_readings(conn: psycopg.Connection, new: dict[str, set[str]], *,
                now: datetime) -> dict[str, tuple[int, int]]:
    """Judge the devices that sent new readings (metric -> device ids):
    the threshold rules, and a silent device is heard again."""
    result = {}
    level = sorted(new.get(rules.WATER_LEVEL, ()))
    if level:
        out_of_band, gone = water(conn, level)
        result[rules.WATER_OUT_OF_BAND.name] = store.sync(
            conn, rules.WATER_OUT_OF_BAND, out_of_band, scope=level, now=now)
        result[rules.WATER_GONE.name] = store.sync(conn, rules.WATER_GONE, gone, scope=level,
                                                   now=now)
    batt = sorted(new.get("battery", ()))
    if batt:
        result[rules.BATTERY_LOW.name] = store.sync(conn, rules.BATTERY_LOW,
                                                    battery(conn, batt, now=now),
                                                    scope=batt, now=now)
    heard = sorted(set().union(*new.values())) if new else []
    if heard:
        result[rules.SENSOR_SILENT.name] = store.sync(conn, rules.SENSOR_SILENT, [],
                                                      scope=heard, now=now)
    return result


# --- Rules on the schedule ---------------------------------------------------------------

_LAST_HEARD = """
SELECT k.device_id, max(r.received_at), max(r.time)
FROM unnest(%(devices)s::text[], %(metrics)s::text[]) AS k(device_id, metric)
CROSS JOIN LATERAL (SELECT time, received_at FROM readings
                    WHERE device_id = k.device_id AND metric = k.metric
                    ORDER BY time DESC LIMIT 1) r
GROUP BY k.device_id"""


def silent(conn: psycopg.Connection, *, now: datetime) -> list[Finding]:
    devices = conn.execute("SELECT id, profile, field_id FROM devices "
                           "WHERE revoked_at IS NULL").fetchall()
    ids, metrics, after, fields = [], [], {}, {}
    for device, profile_name, field in devices:
        profile = PROFILES.get(profile_name)
        if profile is None or not profile.intervals_s:
            continue
        after[device] = rules.silent_after(min(profile.intervals_s.values()))
        fields[device] = field
        for metric in profile.intervals_s:
            ids.append(device)
            metrics.append(metric)
    out = []
    for device, received, measured in conn.execute(_LAST_HEARD, {"devices": ids,
                                                                 "metrics": metrics}):
        if received is not None and now - received > after[device]:
            out.append(Finding(rules.key(rules.SENSOR_SILENT, device), rules.SENSOR_SILENT,
                               received + after[device], field_id=fields[device],
                               device_id=device,
                               evidence={"last_heard": received.isoformat(),
                                         "last_measured": measured.isoformat(),
                                         "silent_h": round((now - received).total_seconds()
                                                           / 3600, 1)}))
    return out


_GATE_COMMANDS = """
SELECT DISTINCT ON (c.device_id) c.device_id, d.field_id, c.id, c.name, c.status, c.reason,
       coalesce(c.done_at, c.acknowledged_at, c.expires_at)
FROM device_commands c JOIN devices d ON d.id = c.device_id
WHERE d.profile = %(profile)s AND d.revoked_at IS NULL
  AND c.status = ANY(%(final)s)
ORDER BY c.device_id, c.id DESC"""


def gate_not_answering(conn: psycopg.Connection) -> list[Finding]:
    rows = conn.execute(_GATE_COMMANDS, {
        "profile": rules.GATE_PROFILE,
        "final": list(rules.COMMAND_FAILED + rules.COMMAND_ANSWERED)}).fetchall()
    return [Finding(rules.key(rules.GATE_NOT_ANSWERING, device), rules.GATE_NOT_ANSWERING, at,
                    field_id=field, device_id=device,
                    evidence={"command_id": cid, "command": name, "status": status,
                              "reason": reason})
            for device, field, cid, name, status, reason, at in rows
            if status in rules.COMMAND_FAILED]


_GATES = """
SELECT d.id, d.field_id, coalesce(d.gate_role, 'supply'), coalesce(w.max_open_h, 8),
       c.done_at, (c.args->>'position')::float8, p.time, p.value,
       (SELECT max(time) FROM readings WHERE device_id = d.id AND metric = %(metric)s
          AND value <= 0 AND time > %(now)s - interval '2 days') AS closed_at,
       (SELECT min(time) FROM readings WHERE device_id = d.id AND metric = %(metric)s
          AND time > %(now)s - interval '2 days') AS first_at
FROM devices d
LEFT JOIN water_control w ON w.field_id = d.field_id
LEFT JOIN LATERAL (SELECT done_at, args FROM device_commands
                   WHERE device_id = d.id AND name = %(set_gate)s AND status = 'done'
                   ORDER BY done_at DESC NULLS LAST LIMIT 1) c ON true
CROSS JOIN LATERAL (SELECT time, value FROM readings
                    WHERE device_id = d.id AND metric = %(metric)s
                    ORDER BY time DESC LIMIT 1) p
WHERE d.profile = %(profile)s AND d.revoked_at IS NULL"""

# The field's paddy level at or just before a time (the first after it, failing that).
_LEVEL_AT = """
SELECT value FROM readings r JOIN devices d ON d.id = r.device_id
WHERE d.field_id = %(field)s AND d.profile = %(profile)s AND r.metric = %(metric)s
  AND r.time <= %(at)s AND r.time > %(at)s - interval '1 hour'
ORDER BY r.time DESC LIMIT 1"""


def gate_not_moving(conn: psycopg.Connection, *, now: datetime) -> list[Finding]:
    out = []
    rows = conn.execute(_GATES, {"metric": rules.GATE_POSITION, "set_gate": rules.SET_GATE,
                                 "profile": rules.GATE_PROFILE, "now": now}).fetchall()
    for device, field, role, max_open_h, done_at, wanted, t, pos, closed_at, first_at in rows:
        k = rules.key(rules.GATE_NOT_MOVING, device)
        if done_at is not None and wanted is not None and abs(pos - wanted) > \
                rules.GATE_MISMATCH_POINTS and t - done_at > rules.GATE_MISMATCH_FOR:
            out.append(Finding(k, rules.GATE_NOT_MOVING, done_at + rules.GATE_MISMATCH_FOR,
                               field_id=field, device_id=device,
                               evidence={"commanded_pct": wanted, "reported_pct": pos,
                                         "commanded_at": done_at.isoformat()}))
            continue
        open_since = closed_at or first_at
        if role != "supply" or field is None or pos <= 0 or open_since is None or \
                t - open_since < timedelta(hours=max_open_h):
            continue
        params = {"field": field, "profile": rules.PADDY_PROFILE, "metric": rules.WATER_LEVEL}
        before = conn.execute(_LEVEL_AT, {**params, "at": open_since}).fetchone()
        latest = conn.execute(_LEVEL_AT, {**params, "at": t}).fetchone()
        if before and latest and latest[0] - before[0] < rules.LEVEL_RISE_M:
            out.append(Finding(k, rules.GATE_NOT_MOVING, t, field_id=field, device_id=device,
                               evidence={"open_since": open_since.isoformat(),
                                         "max_open_h": max_open_h, "reported_pct": pos,
                                         "level_then_m": before[0], "level_now_m": latest[0]}))
    return out


def cold_ahead(conn: psycopg.Connection, *, today: date, now: datetime) -> list[Finding]:
    rows = conn.execute(
        """SELECT DISTINCT ON (f.id) f.id, a.id, a.reason, a.valid_from, a.valid_until
           FROM advisories a CROSS JOIN LATERAL unnest(a.field_ids) AS fa(id)
           JOIN fields f ON f.id = fa.id
           WHERE a.kind = %s AND a.status <> 'withdrawn'
             AND %s BETWEEN a.valid_from AND a.valid_until
           ORDER BY f.id, a.computed_for DESC""", (rules.COLD_ADVISORY_KIND, today)).fetchall()
    return [Finding(rules.key(rules.COLD_AHEAD, field), rules.COLD_AHEAD, now, field_id=field,
                    evidence={"advisory_id": aid, "reason": reason,
                              "valid_from": vf.isoformat(), "valid_until": vu.isoformat()})
            for field, aid, reason, vf, vu in rows]


def blast_day(conn: psycopg.Connection, *, today: date, now: datetime) -> list[Finding]:
    rows = conn.execute(
        """SELECT s.field_id, s.station_id, b.day, b.wet_hours, b.wet_mean_c, b.scout_from
           FROM (SELECT DISTINCT ON (field_id) field_id, station_id FROM field_stages
                 ORDER BY field_id, computed_for DESC) s
           JOIN station_blast b ON b.station_id = s.station_id
           WHERE b.risk = %s AND b.day BETWEEN %s AND %s""",
        (rules.BLAST_FAVOURABLE, today - timedelta(days=rules.BLAST_DAYS_BACK), today)
    ).fetchall()
    return [Finding(rules.key(rules.BLAST_DAY, field, day), rules.BLAST_DAY, now,
                    field_id=field,
                    evidence={"station_id": station, "day": day.isoformat(),
                              "wet_hours": wet, "wet_mean_c": mean,
                              "scout_from": scout.isoformat() if scout else None})
            for field, station, day, wet, mean, scout in rows]


def harvest_window(conn: psycopg.Connection, *, today: date, now: datetime) -> list[Finding]:
    rows = conn.execute(
        """SELECT field_id, opens, closes FROM (
               SELECT DISTINCT ON (field_id) field_id, opens, closes FROM field_harvest_windows
               ORDER BY field_id, computed_for DESC) h
           WHERE opens <= %s AND (closes IS NULL OR closes >= %s)""", (today, today)).fetchall()
    return [Finding(rules.key(rules.HARVEST_WINDOW, field, opens), rules.HARVEST_WINDOW, now,
                    field_id=field,
                    evidence={"opens": opens.isoformat(),
                              "closes": closes.isoformat() if closes else None})
            for field, opens, closes in rows]


# The fields each published advisory reaches now: its fields, a group's, a region's.
_PUBLISHED = """
SELECT DISTINCT a.id, a.kind, a.severity, a.title_ja, a.title_en, f.id
FROM advisories a JOIN advisory_publications p ON p.advisory_id = a.id
LEFT JOIN field_group_members g ON g.group_id = p.group_id
JOIN fields f ON f.id = ANY(p.field_ids) OR f.id = g.field_id
              OR f.municipality = ANY(p.municipalities)
WHERE a.status = 'published' AND p.withdrawn_at IS NULL AND a.valid_until >= %s"""


def advisory_published(conn: psycopg.Connection, *, today: date,
                       now: datetime) -> list[Finding]:
    rows = conn.execute(_PUBLISHED, (today,)).fetchall()
    return [Finding(rules.key(rules.ADVISORY_PUBLISHED, field, aid), rules.ADVISORY_PUBLISHED,
                    now, field_id=field, severity=severity,
                    evidence={"advisory_id": aid, "kind": kind, "title_ja": title_ja,
                              "title_en": title_en})
            for aid, kind, severity, title_ja, title_en, field in rows]


def scheduled(conn: psycopg.Connection, *, now: datetime,
              today: date) -> dict[str, tuple[int, int]]:
    """Run the rules on the schedule, each in its own savepoint: one that
    fails is logged and the others still run."""
    jobs = {
        rules.SENSOR_SILENT: lambda: silent(conn, now=now),
        rules.GATE_NOT_ANSWERING: lambda: gate_not_answering(conn),
        rules.GATE_NOT_MOVING: lambda: gate_not_moving(conn, now=now),
        rules.COLD_AHEAD: lambda: cold_ahead(conn, today=today, now=now),
        rules.BLAST_DAY: lambda: blast_day(conn, today=today, now=now),
        rules.HARVEST_WINDOW: lambda: harvest_window(conn, today=today, now=now),
        rules.ADVISORY_PUBLISHED: lambda: advisory_published(conn, today=today, now=now),
    }
    result = {}
    for rule, find in jobs.items():
        try:
            with conn.transaction():
                result[rule.name] = store.sync(conn, rule, find(), now=now)
        except psycopg.Error:
            logger.exception("rule %s failed; the others still run", rule.name)
    return result
