"""Latest value per metric of a field, by measurement time (a device flushing
old buffered readings never replaces a newer value)."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import AsyncConnection

from agri.api.queries.series import iso
from agri.devices.profiles import METRICS, PROFILES

STALE_INTERVALS = 3  # older than this many reporting intervals: "stale"
OFFLINE_S = 24 * 3600  # older than a day: "offline"


def status(age_s: float, interval_s: int) -> str:
    if age_s > OFFLINE_S:
        return "offline"
    if age_s > STALE_INTERVALS * interval_s:
        return "stale"
    return "ok"


async def latest_by_metric(conn: AsyncConnection, devices: list[tuple[str, str]], *,
                           max_future_s: float) -> dict:
    """``devices``: (id, profile). One index probe per (device, metric);
    readings further ahead than ingest accepts now (``max_future_s``, from
    AGRI_MAX_FUTURE_S) do not count as the latest yet."""
    pairs = [(d, m) for d, p in devices for m in PROFILES[p].metrics]
    if not pairs:
        return {}
    cur = await conn.execute(
        """SELECT k.device_id, k.metric, r.time, r.value
           FROM unnest(%s::text[], %s::text[]) AS k(device_id, metric)
           CROSS JOIN LATERAL (
               SELECT time, value FROM readings
               WHERE device_id = k.device_id AND metric = k.metric
                 AND time <= now() + make_interval(secs => %s)
               ORDER BY time DESC LIMIT 1) r""",
        ([d for d, _ in pairs], [m for _, m in pairs], max_future_s))
    now = datetime.now(UTC)
    interval = {(d, m): PROFILES[p].intervals_s[m] for d, p in devices for m in PROFILES[p].metrics}
    best: dict[str, dict] = {}
    for device_id, metric, t, value in await cur.fetchall():
        if metric in best and best[metric]["_t"] >= t:
            continue
        age = max(0.0, (now - t).total_seconds())
        best[metric] = {"_t": t, "value": value, "unit": METRICS[metric].unit,
                        "measured_at": iso(t), "age_s": round(age, 1),
                        "status": status(age, interval[(device_id, metric)]),
                        "device": device_id}
    for item in best.values():
        del item["_t"]
    return best
