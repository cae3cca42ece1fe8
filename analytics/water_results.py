"""Each field's target water band for its season and the measured level
against it, stored by the daily run (a step of :func:`agri.analytics.runner.run`).

The band is rebuilt around the current heading estimate (observed when
recorded) on every run, for the whole season, with the daily means seen so
far as the cold-day temperatures; the days not yet come are what the
automatic gates will follow. The status compares the last
``STATUS_DAYS`` days of the field's paddy sensor with the band.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import psycopg

from agri.analytics import season_data as sd
from agri.analytics import water_band
from agri.analytics.runner import FieldResult

STATUS_DAYS = 7
BAND_DAYS_AFTER_HEADING = 45  # past the final drainage (30 days after heading)


def store(conn: psycopg.Connection, results: list[FieldResult],
          nights: dict[str, pd.DataFrame], as_of: date) -> dict:
    """The runner step: store bands and statuses; returns summary figures."""
    del nights
    return store_for(conn, results, as_of)[0]


def store_for(conn: psycopg.Connection, results: list[FieldResult], as_of: date
              ) -> tuple[dict, dict[str, water_band.WaterStatus]]:
    """Store bands and statuses; returns (summary, field -> status)."""
    bands = 0
    found: dict[str, water_band.WaterStatus] = {}
    as_of_end = sd.day_end(as_of)
    for r in results:
        e = r.estimate
        if e.heading.date is None or e.heading.date <= r.season.transplanted_on:
            continue
        end = e.heading.date + timedelta(days=BAND_DAYS_AFTER_HEADING)
        # Cold days as seen so far; the days to come keep their stage's band (the
        # climate normal is no forecast).
        temps = {d.date(): float(v) for d, v in e.tmean.items() if d.date() <= as_of}
        band = water_band.daily_band(transplanted_on=r.season.transplanted_on,
                                     heading=e.heading.date,
                                     days=(r.season.transplanted_on, end), cold_days=temps)
        conn.execute("DELETE FROM field_water_bands WHERE field_id = %s", (r.season.field_id,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO field_water_bands (field_id, day, low_m, high_m, phase, "
                "computed_for) VALUES (%s, %s, %s, %s, %s, %s)",
                [(r.season.field_id, b.day, b.low_m, b.high_m, str(b.phase), as_of)
                 for b in band])
        bands += len(band)
        if r.water_sensor_id is None:
            continue
        first = max(as_of - timedelta(days=STATUS_DAYS - 1), r.season.transplanted_on)
        recent = [b for b in band if first <= b.day <= as_of]
        if not recent:
            continue
        level = sd.water_levels(conn, r.water_sensor_id,
                                start=sd.day_start(first) - timedelta(
                                    seconds=water_band.STALE_AFTER_S), end=as_of_end)
        status = water_band.compare(recent, level, as_of=as_of_end)
        conn.execute(
            "INSERT INTO field_water_status (field_id, computed_for, state, off_since, "
            "off_hours, share_inside, latest_level_m, latest_at, device_id) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (field_id, computed_for) DO "
            "UPDATE SET state = EXCLUDED.state, off_since = EXCLUDED.off_since, off_hours = "
            "EXCLUDED.off_hours, share_inside = EXCLUDED.share_inside, latest_level_m = "
            "EXCLUDED.latest_level_m, latest_at = EXCLUDED.latest_at, device_id = "
            "EXCLUDED.device_id, computed_at = now()",
            (r.season.field_id, as_of, _state(status.state), status.off_target_since,
             status.off_target_hours, status.share_inside, status.latest_level_m,
             status.latest_at, r.water_sensor_id))
        found[r.season.field_id] = status
    return {"water_bands": bands, "water_status": len(found)}, found


def _state(state: water_band.LevelState) -> str:
    # A day without a band (after the season) has no target: nothing to be off.
    return "no data" if state in (water_band.LevelState.NO_TARGET,) else str(state)
