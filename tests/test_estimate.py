"""A season as of a day: harvest windows per cultivar with the heat rule,
observed dates, water temperature before panicle initiation, the climate
normal for the days not seen, and G and Th refitted on recorded headings."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from agri.analytics import agronomy as ag
from agri.analytics import climate_normal, estimate
from agri.analytics import phenology as ph

YEAR = 2026
HEADING = date(YEAR, 8, 5)


def flat(value: float, start: str = f"{YEAR}-05-01", end: str = f"{YEAR}-11-30") -> pd.Series:
    return pd.Series(value, index=pd.date_range(start, end))


@pytest.mark.parametrize(("cultivar", "start", "end"), [
    ("seiten-no-hekireki", 900, 1100), ("tsugaru-roman", 960, 1150),
    ("masshigura", 960, 1200)])
def test_harvest_window_per_cultivar(cultivar, start, end):
    thermal = ag.HARVEST_THERMAL_TIME[cultivar]
    assert (thermal.start_cday, thermal.end_cday) == (start, end)
    tmean = flat(20.0)
    opens, closes = ph.harvest_window(tmean, HEADING, thermal_time=thermal)
    assert opens == HEADING + timedelta(days=start // 20)
    assert closes == HEADING + timedelta(days=-(-end // 20))


@pytest.mark.parametrize(("mean", "shift"), [(25.9, 0), (26.0, 50), (26.9, 50), (27.0, 100),
                                             (29.0, 100)])
def test_heat_adjustment_moves_the_window_earlier(mean, shift):
    tmean = flat(22.0)
    first, last = ag.HEAT_RULE_DAYS_AFTER_HEADING
    for d in range(first, last + 1):
        tmean[pd.Timestamp(HEADING + timedelta(days=d))] = mean
    thermal = ag.HARVEST_THERMAL_TIME["seiten-no-hekireki"]
    adjusted, applied = estimate.heat_adjusted(tmean, HEADING, thermal)
    assert applied == (shift > 0)
    assert adjusted.start_cday == thermal.start_cday - shift
    assert adjusted.end_cday == thermal.end_cday - shift
    # Only days 5-24 count: a heat wave on day 4 or day 25 changes nothing.
    edge = flat(22.0)
    edge[pd.Timestamp(HEADING + timedelta(days=first - 1))] = 40.0
    edge[pd.Timestamp(HEADING + timedelta(days=last + 1))] = 40.0
    assert estimate.heat_adjusted(edge, HEADING, thermal) == (thermal, False)


def test_days_not_seen_come_from_the_normal():
    normal = flat(18.0, f"{YEAR}-01-01", f"{YEAR}-12-31")
    seen = flat(25.0, f"{YEAR}-05-20", f"{YEAR}-07-15").drop(pd.Timestamp(f"{YEAR}-06-01"))
    temps = estimate.season_tmean(seen, normal, start=date(YEAR, 5, 20),
                                  as_of=date(YEAR, 7, 10))
    assert temps[pd.Timestamp(f"{YEAR}-07-10")] == 25.0
    assert temps[pd.Timestamp(f"{YEAR}-07-11")] == 18.0  # after as_of: the normal
    assert temps[pd.Timestamp(f"{YEAR}-06-01")] == 18.0  # a missing day: the normal
    with pytest.raises(ph.PhenologyError, match="normal does not cover"):
        estimate.season_tmean(seen, normal.loc[:f"{YEAR}-09-01"], start=date(YEAR, 5, 20),
                              as_of=date(YEAR, 7, 10))


def test_an_observed_heading_is_marked_and_restarts_ripening():
    normal = ph.normal_year_tmean(YEAR)
    kwargs = {"cultivar": ag.SEITEN_NO_HEKIREKI, "transplanted_on": date(YEAR, 5, 20),
              "as_of": date(YEAR, 9, 1), "air_tmean": normal.loc[:f"{YEAR}-09-01"],
              "normal_tmean": normal}
    expected = estimate.estimate(**kwargs)
    assert not expected.heading.observed and not expected.maturity.observed
    late = expected.heading.date + timedelta(days=6)
    observed = estimate.estimate(**kwargs, heading_observed=late)
    assert observed.heading == estimate.Dated(late, True)
    assert observed.dvi_series[pd.Timestamp(late)] == ag.DVI_HEADING
    assert observed.maturity.date > expected.maturity.date
    assert observed.harvest_opens > expected.harvest_opens
    recorded = estimate.estimate(**kwargs, heading_observed=late,
                                 maturity_observed=date(YEAR, 9, 20))
    assert recorded.maturity == estimate.Dated(date(YEAR, 9, 20), True)


def test_warm_water_before_panicle_initiation_speeds_development():
    normal = ph.normal_year_tmean(YEAR)
    kwargs = {"cultivar": ag.SEITEN_NO_HEKIREKI, "transplanted_on": date(YEAR, 5, 20),
              "as_of": date(YEAR, 7, 1), "air_tmean": normal.loc[:f"{YEAR}-07-01"],
              "normal_tmean": normal}
    dry = estimate.estimate(**kwargs)
    water = normal.loc[f"{YEAR}-05-20":f"{YEAR}-07-01"] + 3.0
    ponded = estimate.estimate(**kwargs, water_tmean=water)
    assert ponded.dvi > dry.dvi and ponded.heading.date < dry.heading.date
    # After panicle initiation the water no longer counts: warm water late in the
    # season changes nothing.
    late = water.loc[f"{YEAR}-06-28":]
    after = estimate.estimate(**kwargs, water_tmean=late)
    assert dry.dvi <= after.dvi < ponded.dvi


def test_cold_risk_level_from_the_sensitive_window():
    normal = ph.normal_year_tmean(YEAR)
    cold = normal.copy()
    cold.loc[f"{YEAR}-07-15":f"{YEAR}-08-10"] = 16.0
    kwargs = {"cultivar": ag.SEITEN_NO_HEKIREKI, "transplanted_on": date(YEAR, 5, 20),
              "normal_tmean": normal}
    mild = estimate.estimate(**kwargs, as_of=date(YEAR, 8, 20),
                             air_tmean=normal.loc[:f"{YEAR}-08-20"])
    hit = estimate.estimate(**kwargs, as_of=date(YEAR, 8, 20), air_tmean=cold.loc[
        :f"{YEAR}-08-20"])
    assert hit.cold_q_cday > 40 and hit.cold_sterility_pct > 20
    assert estimate.level(hit.cold_sterility_pct, estimate.COLD_STERILITY_LEVELS_PCT) == "high"
    assert hit.cold_sterility_pct > mild.cold_sterility_pct
    assert hit.sensitive_from < hit.heading.date < hit.sensitive_until


def test_a_station_with_three_years_gets_its_own_normal():
    region = climate_normal.regional(YEAR)
    history = pd.concat([ph.normal_year_tmean(y) + 1.5 for y in (YEAR - 3, YEAR - 2, YEAR - 1)])
    own, where = climate_normal.station_normal(history, YEAR)
    assert where == "station (3 years)"
    july = slice(f"{YEAR}-07-01", f"{YEAR}-07-31")
    assert float((own.loc[july] - region.loc[july]).mean()) == pytest.approx(1.5, abs=0.2)
    short, where = climate_normal.station_normal(history.loc[str(YEAR - 1)], YEAR)
    assert where == "regional" and short.equals(region)
    # This year's own days never enter its normal.
    assert climate_normal.station_normal(flat(40.0, f"{YEAR}-01-01", f"{YEAR}-12-31"),
                                         YEAR)[1] == "regional"


def test_fit_cultivar_recovers_g_and_th():
    truth = replace(ag.SEITEN_NO_HEKIREKI, g=28.0, th=16.0)
    observations = []
    rng = np.random.default_rng(3)
    for year, offset in ((2021, -1.5), (2022, 0.0), (2023, 1.5), (2024, 2.5)):
        tmean = ph.normal_year_tmean(year) + offset + rng.normal(0, 1.0, 365 + (year == 2024))
        for planted in (date(year, 5, 12), date(year, 5, 20), date(year, 5, 28)):
            heading = ph.simulate_phenology(cultivar=truth, transplanted_on=planted,
                                            tmean=tmean).heading
            observations.append(ph.HeadingObservation(planted, heading, tmean))
    fitted = ph.fit_cultivar(observations, cultivar=ag.SEITEN_NO_HEKIREKI)
    assert ph.heading_loss(observations, fitted) <= ph.heading_loss(
        observations, replace(ag.SEITEN_NO_HEKIREKI, g=ph.fit_g(
            observations, cultivar=ag.SEITEN_NO_HEKIREKI)))
    errors = []
    for o in observations:
        got = ph.simulate_phenology(cultivar=fitted, transplanted_on=o.transplanted_on,
                                    tmean=o.tmean).heading
        errors.append(abs((got - o.heading_on).days))
    assert max(errors) <= 1
    with pytest.raises(ph.PhenologyError):
        ph.fit_cultivar([], cultivar=ag.SEITEN_NO_HEKIREKI)
