"""A field's season as of a day: stage, expected dates, harvest window, cold and
heat risk, from the weather seen so far and the climate normal for the rest.

Pure functions over daily series (see :mod:`agri.analytics.phenology`). The
temperature of the season is the station's daily means up to ``as_of`` and
the station's climate normal after it; each date is marked observed when an
officer recorded it, expected otherwise. An observed heading date restarts
ripening from DVI 1 on that day, so maturity and the harvest window follow
the record, not the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag
from agri.analytics import phenology as ph

SEASON_END = (11, 30)  # (month, day): the normal fills the season up to here

# Risk levels of cold sterility (%): the SIMRIW intercept (4.6 %) is the sterility of a
# crop without cold; assumption: 7 % (Q about 10 Cel-day) is the first loss worth a word,
# 10 % (Q about 20) calls for action, 20 % (Q about 40, a 1993-like summer) is serious.
COLD_STERILITY_LEVELS_PCT = ((20.0, "high"), (10.0, "moderate"), (7.0, "low"))
# Heat sterility (%) levels (assumption, same steps as for cold).
HEAT_STERILITY_LEVELS_PCT = ((20.0, "high"), (10.0, "moderate"), (5.0, "low"))

STAGES = (  # (DVI from, stage name), ascending
    (0.0, "vegetative"),
    (ag.DVI_PANICLE_INITIATION, "panicle development"),
    (ag.COLD_DVI_WINDOW[0], "booting"),
    (ag.DVI_HEADING, "ripening"),
    (ag.DVI_MATURITY, "mature"),
)


@dataclass(frozen=True, slots=True)
class Dated:
    """A stage date and whether an officer recorded it (else it is expected)."""

    date: date | None
    observed: bool


@dataclass(frozen=True, slots=True)
class SeasonEstimate:
    as_of: date
    dvi: float
    stage: str
    heading: Dated
    maturity: Dated
    dvi_series: pd.Series  # end-of-day DVI over the whole season (observed + normal)
    tmean: pd.Series  # the season's daily means: observed to as_of, normal after
    harvest_opens: date | None
    harvest_closes: date | None
    harvest_thermal: ag.HarvestThermalTime
    heat_adjusted: bool
    cday_after_heading: float | None  # accumulated to as_of
    cold_q_cday: float  # cooling degree-days in the sensitive window so far
    cold_q_expected_cday: float  # over the whole window, normal for the days not seen
    cold_sterility_pct: float
    sensitive_from: date | None  # first day of the cold-sensitive window
    sensitive_until: date | None
    post_heading_mean_c: float | None  # CHALKY_RISK_DAYS after heading (seen so far)
    chalky_pct: float | None
    heat_sterility_pct: float | None


def stage_name(dvi: float) -> str:
    name = STAGES[0][1]
    for start, label in STAGES:
        if dvi >= start:
            name = label
    return name


def level(value: float, levels: tuple[tuple[float, str], ...]) -> str:
    """The first level whose threshold ``value`` reaches (levels: highest first)."""
    for threshold, label in levels:
        if value >= threshold:
            return label
    return "none"


def season_tmean(observed: pd.Series, normal: pd.Series, *, start: date, as_of: date,
                 end: date | None = None) -> pd.Series:
    """Daily means from ``start`` to the season's end: observed values up to
    ``as_of`` (gaps filled from the normal) and the normal after it."""
    end = end or date(start.year, *SEASON_END)
    days = pd.date_range(start, end, freq="D")
    base = ph.daily_series(normal).reindex(days)
    if base.isna().any():
        raise ph.PhenologyError(f"the climate normal does not cover {start} to {end}")
    if observed is None or observed.empty:
        return base.rename("tmean")
    seen = _by_day(observed).reindex(days)
    seen[seen.index > pd.Timestamp(as_of)] = np.nan
    return seen.fillna(base).rename("tmean")


def _by_day(values: pd.Series) -> pd.Series:
    index = pd.DatetimeIndex(pd.to_datetime(values.index))
    if index.tz is not None:
        index = index.tz_localize(None)
    out = pd.Series(np.asarray(values, dtype=float), index=index.normalize())
    return out[~out.index.duplicated(keep="last")].sort_index()


def heat_adjusted(tmean: pd.Series, heading: date, thermal: ag.HarvestThermalTime
                  ) -> tuple[ag.HarvestThermalTime, bool]:
    """The heat adjustment (Niigata rule): when the mean of days 5-24 after heading
    reaches 26 (27) Cel, the window moves earlier by what the rule takes off its
    normal 1,000 Cel-day (50, 100)."""
    first, last = ag.HEAT_RULE_DAYS_AFTER_HEADING
    temps = ph.daily_series(tmean)
    window = temps.loc[pd.Timestamp(heading + timedelta(days=first)):
                       pd.Timestamp(heading + timedelta(days=last))]
    if len(window) < last - first + 1:
        return thermal, False
    mean = float(window.mean())
    for threshold, cday in ag.HEAT_RULE_STEPS:
        if mean >= threshold:
            shift = ag.HEAT_RULE_NORMAL_CDAY - cday
            return ag.HarvestThermalTime(thermal.start_cday - shift, thermal.end_cday - shift,
                                         f"{thermal.source}; heat rule: days 5-24 mean "
                                         f"{mean:.1f} C, {shift:.0f} C-day earlier"), True
    return thermal, False


def estimate(*, cultivar: ag.CultivarParams, transplanted_on: date, as_of: date,
             air_tmean: pd.Series | None, normal_tmean: pd.Series,
             water_tmean: pd.Series | None = None, air_tmax: pd.Series | None = None,
             heading_observed: date | None = None, maturity_observed: date | None = None,
             heat_adjustment: bool = False,
             latitude_deg: float = ag.TSUGARU_LATITUDE_DEG) -> SeasonEstimate:
    """The season of one field as of ``as_of`` (see the module docstring)."""
    temps = season_tmean(air_tmean, normal_tmean, start=transplanted_on, as_of=as_of)
    water = None
    if water_tmean is not None and not water_tmean.empty:
        water = _by_day(water_tmean)
        water = water[water.index <= pd.Timestamp(as_of)]
    pheno = ph.simulate_phenology(cultivar=cultivar, transplanted_on=transplanted_on,
                                  tmean=temps, latitude_deg=latitude_deg, water_tmean=water)
    dvi = pheno.dvi
    heading = Dated(pheno.heading, False)
    if heading_observed is not None and heading_observed >= transplanted_on:
        dvi = _ripening_from(dvi, temps, heading_observed, cultivar)
        heading = Dated(heading_observed, True)
    reached = dvi[dvi >= ag.DVI_MATURITY]
    maturity = Dated(None if reached.empty else reached.index[0].date(), False)
    if maturity_observed is not None:
        maturity = Dated(maturity_observed, True)
    today = float(dvi.loc[:pd.Timestamp(as_of)].iloc[-1]) if pd.Timestamp(as_of) >= dvi.index[
        0] else ag.DVI_TRANSPLANTING
    thermal = ag.HARVEST_THERMAL_TIME.get(cultivar.id, ag.PREFECTURE_HARVEST)
    adjusted = False
    opens = closes = None
    cday = post_mean = chalky = None
    if heading.date is not None:
        if heat_adjustment:
            thermal, adjusted = heat_adjusted(temps, heading.date, thermal)
        opens, closes = ph.harvest_window(temps, heading.date, thermal_time=thermal)
        after = temps.loc[pd.Timestamp(heading.date + timedelta(days=1)):pd.Timestamp(as_of)]
        cday = float(after.sum()) if len(after) else 0.0
        if air_tmean is not None and as_of > heading.date:
            post_mean = ph.post_heading_mean_c(temps.loc[:pd.Timestamp(as_of)], heading.date)
            if math.isnan(post_mean):
                post_mean = None
            chalky = ph.chalky_grain_pct(temps.loc[:pd.Timestamp(as_of)], heading.date)
    seen_dvi = dvi.loc[:pd.Timestamp(as_of)]
    q_seen = ph.cooling_degree_days(temps.loc[:pd.Timestamp(as_of)], seen_dvi) if len(
        seen_dvi) else 0.0
    q_all = ph.cooling_degree_days(temps, dvi)
    window = dvi[(dvi >= ag.COLD_DVI_WINDOW[0]) & (dvi <= ag.COLD_DVI_WINDOW[1])]
    heat = None
    if air_tmax is not None and not air_tmax.empty:
        tmax = _by_day(air_tmax)
        tmax = tmax[tmax.index <= pd.Timestamp(as_of)]
        inside = dvi[(dvi > ag.HEAT_STERILITY_DVI_WINDOW[0])
                     & (dvi < ag.HEAT_STERILITY_DVI_WINDOW[1])].index.intersection(tmax.index)
        if len(inside):
            heat = float(ph.heat_sterility_pct(float(tmax.loc[inside].mean())))
    return SeasonEstimate(
        as_of=as_of, dvi=today, stage=stage_name(today), heading=heading, maturity=maturity,
        dvi_series=dvi, tmean=temps, harvest_opens=opens, harvest_closes=closes,
        harvest_thermal=thermal, heat_adjusted=adjusted, cday_after_heading=cday,
        cold_q_cday=q_seen, cold_q_expected_cday=q_all,
        cold_sterility_pct=float(ph.cold_sterility_pct(q_all)),
        sensitive_from=window.index[0].date() if len(window) else None,
        sensitive_until=window.index[-1].date() if len(window) else None,
        post_heading_mean_c=post_mean, chalky_pct=chalky, heat_sterility_pct=heat)


def _ripening_from(dvi: pd.Series, temps: pd.Series, heading: date,
                   cultivar: ag.CultivarParams) -> pd.Series:
    """``dvi`` with DVI = 1 at the end of ``heading`` and ripening after it."""
    out = dvi.copy()
    start = pd.Timestamp(heading)
    before = out.index < start
    out[before] = np.minimum(out[before], ag.DVI_HEADING - 1e-9)
    value = ag.DVI_HEADING
    for day in out.index[out.index >= start]:
        if day > start and value < ag.DVI_MATURITY:
            value = min(value + ph.development_rate(
                dvi=value, tmean_c=float(temps.loc[day]), day_length_h=0.0,
                cultivar=cultivar), ag.DVI_MATURITY)
        out[day] = value
    return out
