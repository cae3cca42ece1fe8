"""The daily analytics run: every field's season as of a day, stored.

For each field with a season in the year of ``as_of``: the growth stage and
expected dates (:mod:`agri.analytics.estimate`) from its nearest weather
station with data (a station whose quality score says it may be broken is
skipped), the harvest window, cold and heat risk; BLASTAM for each station;
then the results are written, one table per kind, keyed by the day they are
computed for. Re-running a day replaces that day's rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import orjson
import pandas as pd
import psycopg

from agri.analytics import agronomy as ag
from agri.analytics import blast, calibration, climate_normal, estimate
from agri.analytics import season_data as sd
from agri.clock import TIME_ZONE

logger = logging.getLogger(__name__)

HISTORY_YEARS = 10  # earlier years read for a station's own normal
BLAST_DAYS = 14  # nights classified per run (re-classified as late data arrives)
BLAST_RECENT_DAYS = 10  # a favourable night this recent keeps a field's blast risk up
MIN_STATION_DAYS_SHARE = 0.8  # a station must have this share of the season's days so far
MIN_DAY_COUNT = 72  # 10-minute readings: half a day's worth makes a daily mean usable


@dataclass(slots=True)
class RunSummary:
    as_of: date
    fields: int = 0
    estimated: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    stations: int = 0
    blast_nights: int = 0
    calibrated: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "fields": self.fields,
                "estimated": self.estimated, "skipped": len(self.skipped),
                "skipped_examples": dict(list(self.skipped.items())[:10]),
                "stations": self.stations, "blast_nights": self.blast_nights,
                "calibrated": self.calibrated, **self.extra,
                "seconds": round(self.seconds, 2)}


@dataclass(frozen=True, slots=True)
class FieldResult:
    season: sd.FieldSeason
    estimate: estimate.SeasonEstimate
    station_id: str
    water_sensor_id: str | None
    calibrated: bool


Hook = Callable[[psycopg.Connection, list[FieldResult], dict[str, pd.DataFrame], date],
                dict | None]


def run(conn: psycopg.Connection, *, as_of: date, field_ids: list[str] | None = None,
        heat_adjustment: bool = False, ignore_devices: set[str] | None = None,
        hooks: Sequence[Hook] = ()) -> RunSummary:
    """Compute and store every result for ``as_of`` (one transaction). ``hooks``
    are further steps that use the estimates (water band, advice): each is
    called with (conn, results, nights, as_of) and returns summary figures."""
    started = time.monotonic()
    summary = RunSummary(as_of)
    year = as_of.year
    with conn.transaction():
        field_list = [f for f in sd.seasons(conn, year, field_ids=field_ids)
                      if f.transplanted_on <= as_of]
        summary.fields = len(field_list)
        ignore = set(ignore_devices or ())
        station_list = [s for s in sd.stations(conn) if s.device_id not in ignore]
        results = estimate_fields(conn, field_list, station_list, as_of=as_of,
                                  heat_adjustment=heat_adjustment, summary=summary,
                                  ignore=ignore)
        store_estimates(conn, results, as_of=as_of)
        store_harvest_order(conn, results, as_of=as_of)
        nights = classify_blast(conn, sorted({r.station_id for r in results}), as_of=as_of)
        summary.stations = len({r.station_id for r in results})
        summary.blast_nights = sum(len(t) for t in nights.values())
        store_risks(conn, results, nights, as_of=as_of)
        for hook in hooks:
            summary.extra.update(hook(conn, results, nights, as_of) or {})
    summary.seconds = time.monotonic() - started
    logger.info("analytics for %s: %s", as_of, summary.to_json())
    return summary


def estimate_fields(conn: psycopg.Connection, field_list: list[sd.FieldSeason],
                    station_list: list[sd.Station], *, as_of: date, heat_adjustment: bool,
                    summary: RunSummary, ignore: set[str]) -> list[FieldResult]:
    if not field_list:
        return []
    year = as_of.year
    start = min(f.transplanted_on for f in field_list)
    ids = [s.device_id for s in station_list]
    air = sd.daily(conn, ids, "air_temp", start=start, end=as_of)
    history = sd.daily(conn, ids, "air_temp", start=date(year - HISTORY_YEARS, 1, 1),
                       end=date(year - 1, 12, 31))
    sensors = {k: v for k, v in sd.paddy_sensors(conn, [f.field_id for f in field_list]).items()
               if v not in ignore}
    # Each station's daily means and maxima, once (not per field and station).
    means = {i: sd.daily_series(air, i, min_count=MIN_DAY_COUNT) for i in ids}
    maxima = {i: sd.daily_series(air, i, "max", min_count=MIN_DAY_COUNT) for i in ids}
    headings = sd.observed_dates(conn, year, "heading")
    maturities = sd.observed_dates(conn, year, "maturity")
    cultivars: dict[str, tuple] = {}
    normals: dict[str, pd.Series] = {}
    out = []
    for f in field_list:
        if f.cultivar not in cultivars:
            cultivars[f.cultivar] = calibration.cultivar_for(conn, f.cultivar, year)
            if cultivars[f.cultivar][1]:
                summary.calibrated.append(f.cultivar)
        params, calibrated = cultivars[f.cultivar]
        if params is None:
            summary.skipped[f.field_id] = f"cultivar {f.cultivar!r} has no parameters"
            continue
        station = _station_for(f, station_list, means, as_of)
        if station is None:
            summary.skipped[f.field_id] = "no weather station with data for this season"
            continue
        if station not in normals:
            normals[station] = climate_normal.station_normal(
                sd.daily_series(history, station), year)[0]
        sensor = sensors.get(f.field_id)
        water = (sd.ponded_water_tmean(conn, sensor, start=f.transplanted_on, end=as_of)
                 if sensor else None)
        result = estimate.estimate(
            cultivar=params, transplanted_on=f.transplanted_on, as_of=as_of,
            air_tmean=means[station], air_tmax=maxima[station],
            normal_tmean=normals[station], water_tmean=water,
            heading_observed=headings.get(f.field_id),
            maturity_observed=maturities.get(f.field_id), heat_adjustment=heat_adjustment)
        out.append(FieldResult(f, result, station, sensor, calibrated))
    summary.estimated = len(out)
    return out


def _station_for(f: sd.FieldSeason, station_list: list[sd.Station],
                 means: dict[str, pd.Series], as_of: date) -> str | None:
    """The nearest station with enough days of this season (or the one with most)."""
    season_days = max((as_of - f.transplanted_on).days + 1, 1)
    best, best_days = None, 0
    for station in sd.by_distance(f, station_list):
        series = means[station.device_id]
        days = int((series.index >= pd.Timestamp(f.transplanted_on)).sum())
        if days >= MIN_STATION_DAYS_SHARE * season_days:
            return station.device_id
        if days > best_days:
            best, best_days = station.device_id, days
    return best


def store_estimates(conn: psycopg.Connection, results: list[FieldResult], *, as_of: date) -> None:
    ids = [r.season.field_id for r in results]
    for table in ("field_stages", "field_harvest_windows"):
        conn.execute(f"DELETE FROM {table} WHERE computed_for = %s AND field_id = ANY(%s)",
                     (as_of, ids))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO field_stages (field_id, computed_for, year, cultivar, dvi, stage, "
            "heading, heading_observed, maturity, maturity_observed, station_id, "
            "water_sensor_id, calibrated) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s)",
            [(r.season.field_id, as_of, as_of.year, r.season.cultivar, r.estimate.dvi,
              r.estimate.stage, r.estimate.heading.date, r.estimate.heading.observed,
              r.estimate.maturity.date, r.estimate.maturity.observed, r.station_id,
              r.water_sensor_id, r.calibrated) for r in results])
        cur.executemany(
            "INSERT INTO field_harvest_windows (field_id, computed_for, opens, closes, "
            "opens_cday, closes_cday, cday_to_date, heat_adjusted, rule) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(r.season.field_id, as_of, r.estimate.harvest_opens, r.estimate.harvest_closes,
              r.estimate.harvest_thermal.start_cday, r.estimate.harvest_thermal.end_cday,
              r.estimate.cday_after_heading, r.estimate.heat_adjusted,
              r.estimate.harvest_thermal.source) for r in results])


def store_harvest_order(conn: psycopg.Connection, results: list[FieldResult], *,
                        as_of: date) -> None:
    """The harvest order of each municipality's fields: by the harvest-timing map's
    class where an image ranked them (the latest of the season), then by the date
    the window opens (:func:`agri.analytics.maturity.harvest_order`)."""
    from agri.analytics import maturity

    rows = conn.execute(
        "SELECT DISTINCT ON (m.field_id) m.field_id, m.class, m.rank FROM field_maturity m "
        "JOIN images i ON i.id = m.image_id WHERE m.field_id = ANY(%s) AND "
        "extract(year FROM i.acquired_at AT TIME ZONE %s) = %s "
        "ORDER BY m.field_id, i.acquired_at DESC",
        ([r.season.field_id for r in results], TIME_ZONE, as_of.year)).fetchall()
    ranked = pd.DataFrame([(c, k) for _, c, k in rows], index=[f for f, _, _ in rows],
                          columns=["harvest_class", "ripeness_rank"], dtype=float)
    by_region: dict[str, list[FieldResult]] = {}
    for r in results:
        by_region.setdefault(r.season.municipality, []).append(r)
    updates = []
    for members in by_region.values():
        ids = [r.season.field_id for r in members]
        table = maturity.harvest_order(ranked[ranked.index.isin(ids)],
                                       {r.season.field_id: r.estimate.harvest_opens
                                        for r in members})
        updates += [(int(row["order"]), str(row["basis"]), fid, as_of)
                    for fid, row in table.iterrows()]
    with conn.cursor() as cur:
        cur.executemany("UPDATE field_harvest_windows SET region_order = %s, order_basis = %s "
                        "WHERE field_id = %s AND computed_for = %s", updates)


def classify_blast(conn: psycopg.Connection, station_ids: list[str], *, as_of: date
                   ) -> dict[str, pd.DataFrame]:
    """BLASTAM for the last ``BLAST_DAYS`` nights of each station, stored."""
    out = {}
    first = as_of - timedelta(days=BLAST_DAYS)
    for station in station_ids:
        # Four days before the first night for its 5-day mean; the last night ends
        # at 07:00 the day after as_of.
        hourly = sd.hourly_weather(conn, station, start=sd.day_start(first - timedelta(days=4)),
                                   end=sd.day_start(as_of + timedelta(days=1))
                                   + timedelta(hours=7))
        if hourly["air_temp"].notna().sum() == 0:
            continue
        table = blast.daily_risk(hourly)
        if table.empty:
            continue
        table = table[(table["day"] >= first) & (table["day"] <= as_of)]
        out[station] = table
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO station_blast (station_id, day, risk, wet_hours, wet_mean_c, "
                "five_day_mean_c, source, scout_from) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (station_id, day) DO UPDATE SET risk = EXCLUDED.risk, wet_hours "
                "= EXCLUDED.wet_hours, wet_mean_c = EXCLUDED.wet_mean_c, five_day_mean_c = "
                "EXCLUDED.five_day_mean_c, source = EXCLUDED.source, scout_from = "
                "EXCLUDED.scout_from, computed_at = now()",
                [(station, row.day, None if row.risk is None else str(row.risk),
                  int(row.wet_hours), _finite(row.wet_mean_c), _finite(row.five_day_mean_c),
                  row.source, row.scout_from) for row in table.itertuples()])
    return out


def _finite(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def cold_level(r: estimate.SeasonEstimate) -> str:
    return estimate.level(r.cold_sterility_pct, estimate.COLD_STERILITY_LEVELS_PCT)


def heat_level(r: estimate.SeasonEstimate) -> tuple[str, float | None]:
    """(level, value): chalky-grain risk from the post-heading mean, heat sterility."""
    levels = []
    if r.post_heading_mean_c is not None:
        low, high = ag.CHALKY_RISK_MEAN_C
        levels.append("high" if r.post_heading_mean_c >= high else
                      "moderate" if r.post_heading_mean_c >= low else "none")
    if r.heat_sterility_pct is not None:
        levels.append(estimate.level(r.heat_sterility_pct, estimate.HEAT_STERILITY_LEVELS_PCT))
    order = ["none", "low", "moderate", "high"]
    worst = max(levels, key=order.index) if levels else "none"
    return worst, r.post_heading_mean_c


def blast_level(table: pd.DataFrame | None, as_of: date) -> tuple[str, dict]:
    if table is None or table.empty:
        return "none", {"nights": 0}
    recent = table[table["day"] > as_of - timedelta(days=BLAST_RECENT_DAYS)]
    favourable = recent[recent["risk"] == blast.BlastRisk.FAVOURABLE]
    sub = recent[recent["risk"] == blast.BlastRisk.SUB_FAVOURABLE]
    last = table.iloc[-1]
    details = {"nights": int(len(table)), "last_night": last["day"].isoformat(),
               "last_risk": None if last["risk"] is None else str(last["risk"]),
               "favourable_days": [d.isoformat() for d in favourable["day"]],
               "sub_favourable_days": [d.isoformat() for d in sub["day"]]}
    if len(favourable):
        details["scout_from"] = favourable["scout_from"].max().isoformat()
        return "high", details
    return ("moderate" if len(sub) else "none"), details


def store_risks(conn: psycopg.Connection, results: list[FieldResult],
                nights: dict[str, pd.DataFrame], *, as_of: date) -> None:
    conn.execute("DELETE FROM field_risks WHERE computed_for = %s AND field_id = ANY(%s)",
                 (as_of, [r.season.field_id for r in results]))
    rows = []
    for r in results:
        e = r.estimate
        rows.append((r.season.field_id, as_of, "cold", cold_level(e), e.cold_sterility_pct, {
            "q_cday_so_far": round(e.cold_q_cday, 2),
            "q_cday_expected": round(e.cold_q_expected_cday, 2),
            "sterility_pct": round(e.cold_sterility_pct, 2),
            "sensitive_from": _iso(e.sensitive_from), "sensitive_until": _iso(e.sensitive_until),
            "heading": _iso(e.heading.date), "heading_observed": e.heading.observed}))
        heat, value = heat_level(e)
        rows.append((r.season.field_id, as_of, "heat", heat, value, {
            "post_heading_mean_c": _round(e.post_heading_mean_c),
            "chalky_pct": _round(e.chalky_pct),
            "heat_sterility_pct": _round(e.heat_sterility_pct)}))
        level, details = blast_level(nights.get(r.station_id), as_of)
        details["station"] = r.station_id
        rows.append((r.season.field_id, as_of, "blast", level, None, details))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO field_risks (field_id, computed_for, kind, level, value, details) "
            "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
            [(*row[:5], orjson.dumps(row[5]).decode()) for row in rows])


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
