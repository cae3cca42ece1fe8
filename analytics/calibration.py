"""Refit a cultivar's development speed from the heading dates officers
recorded in earlier seasons.

G (the days of fastest vegetative development) and Th (the temperature of
half the maximum rate) are refitted with
:func:`agri.analytics.phenology.fit_cultivar`; the other parameters stay the
published ones (analytics/agronomy.py section 1). Each record is replayed with
the daily mean air temperature of the field's nearest station that year (and
the field's ponded water temperature before panicle initiation, as the
estimates use it). A cultivar with fewer than ``MIN_OBSERVATIONS`` usable
records keeps its table parameters.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from datetime import date

import psycopg

from agri.analytics import agronomy as ag
from agri.analytics import phenology as ph
from agri.analytics import season_data as sd

logger = logging.getLogger(__name__)

MIN_OBSERVATIONS = 5
MAX_SEASONS_BACK = 10


@dataclass(frozen=True, slots=True)
class Calibration:
    cultivar: str
    for_year: int
    g: float
    th: float
    observations: int
    rmse_days: float
    seasons: tuple[int, ...]


def observations_for(conn: psycopg.Connection, cultivar: str, for_year: int
                     ) -> list[tuple[int, ph.HeadingObservation]]:
    """(year, observation) for the heading dates recorded for ``cultivar`` in the
    seasons before ``for_year`` whose station weather covers transplanting to heading."""
    rows = conn.execute(
        "SELECT o.year, o.field_id, o.observed_on, s.transplanted_on FROM observations o "
        "JOIN field_seasons s ON s.field_id = o.field_id AND s.year = o.year "
        "WHERE o.kind = 'heading' AND s.cultivar = %s AND o.year < %s AND o.year >= %s "
        "ORDER BY o.year, o.field_id", (cultivar, for_year, for_year - MAX_SEASONS_BACK)
    ).fetchall()
    if not rows:
        return []
    station_list = sd.stations(conn)
    out: list[tuple[int, ph.HeadingObservation]] = []
    for year in sorted({r[0] for r in rows}):
        records = [r for r in rows if r[0] == year]
        fields = {f.field_id: f for f in sd.seasons(conn, year, field_ids=[r[1] for r in records])}
        start = min(r[3] for r in records)
        end = max(r[2] for r in records)
        air = sd.daily(conn, [s.device_id for s in station_list], "air_temp", start=start,
                       end=end)
        sensors = sd.paddy_sensors(conn, list(fields))
        for _, field_id, heading_on, planted in records:
            f = fields.get(field_id)
            if f is None or heading_on <= planted:
                continue
            tmean = _covering(air, f, station_list, planted, heading_on)
            if tmean is None:
                continue
            water = (sd.ponded_water_tmean(conn, sensors[field_id], start=planted,
                                           end=heading_on) if field_id in sensors else None)
            out.append((year, ph.HeadingObservation(planted, heading_on, tmean,
                                                    water_tmean=water)))
    return out


def _covering(air, field: sd.FieldSeason, station_list: list[sd.Station], start: date,
              end: date):
    """Daily means of the nearest station with every day from ``start`` to ``end``."""
    need = (end - start).days + 1
    for station in sd.by_distance(field, station_list):
        series = sd.daily_series(air, station.device_id)
        series = series.loc[str(start):str(end)]
        if len(series) == need:
            return series
    return None


def calibrate(conn: psycopg.Connection, cultivar_id: str, for_year: int) -> Calibration | None:
    """Refit G for ``cultivar_id`` from earlier seasons and store it; None (and the
    table parameters stay) when too few records exist."""
    base = ag.CULTIVARS.get(cultivar_id)
    if base is None:
        return None
    found = observations_for(conn, cultivar_id, for_year)
    if len(found) < MIN_OBSERVATIONS:
        return None
    records = _records(conn, cultivar_id, for_year)
    obs = [o for _, o in found]
    fitted = ph.fit_cultivar(obs, cultivar=base)
    errors = []
    for o in obs:
        result = ph.simulate_phenology(cultivar=fitted, transplanted_on=o.transplanted_on,
                                       tmean=o.tmean, water_tmean=o.water_tmean)
        observed = (o.heading_on - o.transplanted_on).days + 0.5
        errors.append((result.heading_day if result.heading_day is not None
                       else len(result.dvi)) - observed)
    rmse = math.sqrt(sum(e * e for e in errors) / len(errors))
    seasons = tuple(sorted({y for y, _ in found}))
    conn.execute(
        "INSERT INTO cultivar_calibrations (cultivar, for_year, g, th, observations, records, "
        "rmse_days, seasons) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (cultivar, "
        "for_year) DO UPDATE SET g = EXCLUDED.g, th = EXCLUDED.th, "
        "observations = EXCLUDED.observations, "
        "records = EXCLUDED.records, rmse_days = EXCLUDED.rmse_days, "
        "seasons = EXCLUDED.seasons, computed_at = now()",
        (cultivar_id, for_year, fitted.g, fitted.th, len(obs), records, rmse, list(seasons)))
    logger.info("calibrated %s for %d: G %.2f days, Th %.2f C from %d heading records of %s "
                "(RMSE %.1f days)", cultivar_id, for_year, fitted.g, fitted.th, len(obs),
                seasons, rmse)
    return Calibration(cultivar_id, for_year, fitted.g, fitted.th, len(obs), rmse, seasons)


def _records(conn: psycopg.Connection, cultivar_id: str, for_year: int) -> int:
    return conn.execute(
        "SELECT count(*) FROM observations o JOIN field_seasons s ON s.field_id = o.field_id "
        "AND s.year = o.year WHERE o.kind = 'heading' AND s.cultivar = %s AND o.year < %s "
        "AND o.year >= %s", (cultivar_id, for_year, for_year - MAX_SEASONS_BACK)).fetchone()[0]


def cultivar_for(conn: psycopg.Connection, cultivar_id: str, year: int
                 ) -> tuple[ag.CultivarParams | None, bool]:
    """The parameters to use for ``cultivar_id`` in ``year``: the stored calibration
    when there is one (refitted when new records arrived), else the table's."""
    base = ag.CULTIVARS.get(cultivar_id)
    if base is None:
        return None, False
    stored = conn.execute(
        "SELECT g, th, records FROM cultivar_calibrations WHERE cultivar = %s AND "
        "for_year = %s", (cultivar_id, year)).fetchone()
    if stored is not None and stored[2] == _records(conn, cultivar_id, year):
        return replace(base, g=stored[0], th=stored[1]), True
    fitted = calibrate(conn, cultivar_id, year)
    if fitted is None:
        return base, False
    return replace(base, g=fitted.g, th=fitted.th), True
