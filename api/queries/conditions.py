"""Latest value per metric, by measurement time (a device flushing old
buffered readings never replaces a newer value), with its age and a status.

A metric's status, and the colour pages and maps show it in:

- ``ok`` (green): measured within ``STALE_INTERVALS`` of the profile's
  expected interval for that metric (devices/profiles.py);
- ``stale`` (yellow): older than that, but not more than ``OFFLINE_S``;
- ``offline`` (grey): older than ``OFFLINE_S`` (a day);
- ``low`` (yellow) / ``empty`` (red): a fresh battery reading under
  ``BATTERY_LOW_PCT`` / ``BATTERY_EMPTY_PCT``.

Values outside a metric's physical range never get here: ingest rejects them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import AsyncConnection

from agri.api.queries.series import iso
from agri.devices.profiles import METRICS, PROFILES

STALE_INTERVALS = 3  # older than this many reporting intervals: "stale"
OFFLINE_S = 24 * 3600  # older than a day: "offline"
BATTERY_LOW_PCT = 20.0
BATTERY_EMPTY_PCT = 5.0
COLOURS = {"ok": "green", "stale": "yellow", "low": "yellow", "empty": "red", "offline": "grey"}


def status(age_s: float, interval_s: int) -> str:
    if age_s > OFFLINE_S:
        return "offline"
    if age_s > STALE_INTERVALS * interval_s:
        return "stale"
    return "ok"


def metric_status(metric: str, value: float, age_s: float, interval_s: int) -> str:
    """:func:`status`, and for a fresh battery reading how full it is."""
    state = status(age_s, interval_s)
    if state == "ok" and metric == "battery":
        if value < BATTERY_EMPTY_PCT:
            return "empty"
        if value < BATTERY_LOW_PCT:
            return "low"
    return state


_LATEST = """SELECT k.device_id, k.metric, r.time, r.value
FROM unnest(%s::text[], %s::text[]) AS k(device_id, metric)
CROSS JOIN LATERAL (
    SELECT time, value FROM readings
    WHERE device_id = k.device_id AND metric = k.metric
      AND time <= now() + make_interval(secs => %s)
    ORDER BY time DESC LIMIT 1) r"""


async def latest(conn: AsyncConnection, pairs: list[tuple[str, str]], *,
                 max_future_s: float) -> dict[tuple[str, str], tuple[datetime, float]]:
    """(time, value) of the latest reading of each (device, metric) that has
    one: one index probe per pair. Readings further ahead than ingest accepts
    now (``max_future_s``, from AGRI_MAX_FUTURE_S) do not count as the latest yet."""
    if not pairs:
        return {}
    cur = await conn.execute(_LATEST, ([d for d, _ in pairs], [m for _, m in pairs],
                                       max_future_s))
    return {(d, m): (t, v) for d, m, t, v in await cur.fetchall()}


def metric_pairs(devices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(device, metric) of every metric of ``devices`` (id, profile)."""
    return [(d, m) for d, p in devices for m in PROFILES[p].metrics]


async def latest_by_metric(conn: AsyncConnection, devices: list[tuple[str, str]], *,
                           max_future_s: float) -> dict:
    """``devices``: (id, profile). Per metric, the latest reading of any of them:
    ``{"value", "unit", "measured_at", "age_s", "status", "colour", "device"}``."""
    found = await latest(conn, metric_pairs(devices), max_future_s=max_future_s)
    return by_metric(devices, found)


def by_metric(devices: list[tuple[str, str]], found: dict) -> dict:
    """``latest_by_metric`` from readings already read (``latest`` of at least
    ``metric_pairs(devices)``)."""
    now = datetime.now(UTC)
    interval = {(d, m): PROFILES[p].intervals_s[m] for d, p in devices for m in PROFILES[p].metrics}
    best: dict[str, tuple] = {}
    for (device_id, metric), (t, value) in found.items():
        if (device_id, metric) not in interval:
            continue
        if metric not in best or best[metric][0] < t:
            best[metric] = (t, value, device_id)
    out = {}
    for metric, (t, value, device_id) in sorted(best.items()):
        age = max(0.0, (now - t).total_seconds())
        state = metric_status(metric, value, age, interval[(device_id, metric)])
        out[metric] = {"value": value, "unit": METRICS[metric].unit, "measured_at": iso(t),
                       "age_s": round(age, 1), "status": state, "colour": COLOURS[state],
                       "device": device_id}
    return out
