"""The simulated Tsugaru weather against published climate normals and physical sense."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agri.simulator.weather import (
    Weather,
    YearType,
    simulate_weather,
    simulate_years,
    write_daily_csv,
)

# Hirosaki monthly mean temperature, C, AMeDAS quasi-normals 1979-1990 (JMA), Jan..Dec.
HIROSAKI_MEAN_TEMP_C = [-2.5, -1.9, 1.4, 8.1, 13.5, 17.7, 20.9, 23.3, 18.2, 11.8, 5.7, 0.9]
# Hirosaki mean daily maximum, C, JMA normals 1991-2020 (secondary source), Jan..Dec.
HIROSAKI_MEAN_TMAX_C = [1.7, 2.5, 6.7, 14.3, 20.3, 23.9, 27.4, 28.8, 24.9, 18.4, 11.3, 4.4]
# Aomori monthly sunshine hours, JMA normals 1961-1990, Jan..Dec (1,695 h/year).
AOMORI_SUNSHINE_H = [56, 75, 145, 189, 216, 186, 179, 189, 163, 156, 88, 53]
# Hirosaki annual precipitation, mm (Shinpen Hirosaki Shishi: Aomori 1,300, Hirosaki 1,100).
HIROSAKI_ANNUAL_PRECIPITATION_MM = 1100.0
# June-August mean temperature by season type, C (Aomori 1993, a cool year: 18.3; a normal
# year near 20-21; a hot year near 23).
SUMMER_TARGET_C = {YearType.COOL: 18.5, YearType.NORMAL: 20.5, YearType.HOT: 23.0}
SUMMER_MONTH_DAYS = np.array([30, 31, 31])
# Tohoku crop failures came when the July or August mean was at or below 20 C.
FAILURE_MONTH_MEAN_C = 20.0

HOURLY_FIELDS = [f.name for f in fields(Weather) if f.name != "year"]
DAILY_COLUMNS = ["date", "tmean", "tmax", "tmin", "precipitation_mm", "sunshine_h", "wind_ms",
                 "rh"]
YEARS = 30
SEED = 1


def daily_table(weathers: list[Weather]) -> pd.DataFrame:
    """The daily rows of all years, with a month column."""
    frame = pd.concat([w.daily() for w in weathers], ignore_index=True)
    frame["month"] = [d.month for d in frame["date"]]
    return frame


@pytest.fixture(scope="module")
def climate_run() -> tuple[list[Weather], float]:
    """Thirty years of the natural climate mix, and the seconds they took."""
    started = time.perf_counter()
    weathers = simulate_years(years=YEARS, seed=SEED)
    return weathers, time.perf_counter() - started


@pytest.fixture(scope="module")
def thirty_years(climate_run: tuple[list[Weather], float]) -> pd.DataFrame:
    return daily_table(climate_run[0])


def test_thirty_years_simulate_in_a_few_seconds(climate_run):
    weathers, seconds = climate_run
    assert len(weathers) == YEARS
    assert [w.year for w in weathers] == list(range(2001, 2001 + YEARS))
    assert seconds < 10.0


def test_monthly_mean_temperature_matches_hirosaki_normals(thirty_years):
    simulated = thirty_years.groupby("month")["tmean"].mean().to_numpy()
    assert np.abs(simulated - HIROSAKI_MEAN_TEMP_C).max() <= 0.5, simulated.round(2)


def test_mean_daily_maximum_close_to_hirosaki_normals(thirty_years):
    simulated = thirty_years.groupby("month")["tmax"].mean().to_numpy()
    assert np.abs(simulated - HIROSAKI_MEAN_TMAX_C).max() <= 1.5, simulated.round(2)


def test_monthly_sunshine_matches_aomori_normals(thirty_years):
    simulated = thirty_years.groupby("month")["sunshine_h"].sum().to_numpy() / YEARS
    ratio = simulated / np.array(AOMORI_SUNSHINE_H)
    assert np.abs(ratio - 1.0).max() <= 0.10, simulated.round(0)


def test_annual_precipitation_matches_hirosaki(thirty_years):
    annual = thirty_years["precipitation_mm"].sum() / YEARS
    assert annual == pytest.approx(HIROSAKI_ANNUAL_PRECIPITATION_MM, rel=0.10)


def test_wet_and_dry_spells_persist(thirty_years):
    wet = (thirty_years["precipitation_mm"] > 0.0).to_numpy()
    assert wet[1:][wet[:-1]].mean() > wet[1:][~wet[:-1]].mean() + 0.1


@pytest.fixture(scope="module")
def summer_months() -> dict[YearType, np.ndarray]:
    """June, July and August mean temperature, C, of ten seasons of each type: (10, 3)."""
    means = {}
    for year_type in YearType:
        seasons = []
        for seed in range(10):
            days = daily_table([simulate_weather(year=2001, seed=seed, year_type=year_type)])
            seasons.append([days.loc[days["month"] == m, "tmean"].mean() for m in (6, 7, 8)])
        means[year_type] = np.array(seasons)
    return means


@pytest.mark.parametrize("year_type", list(YearType))
def test_summer_mean_of_each_year_type(year_type, summer_months):
    means = summer_months[year_type] @ SUMMER_MONTH_DAYS / SUMMER_MONTH_DAYS.sum()
    target = SUMMER_TARGET_C[year_type]
    assert abs(means.mean() - target) <= 0.5, means.round(2)
    assert np.abs(means - target).max() <= 1.0, means.round(2)


def test_cool_summers_stay_cold_through_july_and_august(summer_months):
    cool = summer_months[YearType.COOL]
    departure = cool.mean(axis=0) - summer_months[YearType.NORMAL].mean(axis=0)
    figures = f"cool Jun/Jul/Aug {cool.mean(axis=0).round(2)}, departure {departure.round(2)}"
    # A cool season grows colder into August, when the crop heads (climate.SEASON_PROFILE).
    assert departure[2] < departure[1] < departure[0] < 0.0, figures
    assert departure[2] <= -2.0, figures
    # Tohoku crops failed when July or August averaged 20 C or less.
    assert (cool[:, 1:].min(axis=1) <= FAILURE_MONTH_MEAN_C).all(), cool.round(2)


def test_same_seed_gives_identical_weather():
    first = simulate_weather(year=2003, seed=42)
    again = simulate_weather(year=2003, seed=42)
    other = simulate_weather(year=2003, seed=43)
    for name in HOURLY_FIELDS:
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.air_temp, other.air_temp)


def test_run_of_years_is_its_single_years():
    run = simulate_years(years=2, seed=5, first_year=2010, year_type=YearType.COOL)
    alone = simulate_weather(year=2011, seed=5, year_type=YearType.COOL)
    np.testing.assert_array_equal(run[1].air_temp, alone.air_temp)
    np.testing.assert_array_equal(run[1].yamase, alone.yamase)


def test_physical_ranges_and_lengths():
    for year, hours in ((2003, 8760), (2004, 8784)):
        w = simulate_weather(year=year, seed=3)
        for name in HOURLY_FIELDS:
            assert getattr(w, name).shape == (hours,), name
        assert np.all((w.rel_humidity >= 0.0) & (w.rel_humidity <= 100.0))
        assert np.all((w.sunshine >= 0.0) & (w.sunshine <= 1.0))
        assert np.all((w.leaf_wetness >= 0.0) & (w.leaf_wetness <= 1.0))
        assert np.all(w.precipitation >= 0.0)
        assert np.all(w.wind_speed >= 0.0)
        assert np.all((w.wind_direction >= 0.0) & (w.wind_direction < 360.0))
        assert np.all(w.solar_radiation >= 0.0)
        assert w.solar_radiation.max() < 1100.0
        assert w.yamase.dtype == np.bool_


def test_no_sun_at_night():
    w = simulate_weather(year=2003, seed=3)
    night = np.isin(w.times().hour, [20, 21, 22, 23, 0, 1, 2])
    assert np.all(w.solar_radiation[night] == 0.0)
    assert np.all(w.sunshine[night] == 0.0)
    assert w.solar_radiation[~night].max() > 700.0


def test_diurnal_cycle_peaks_in_the_afternoon():
    w = simulate_weather(year=2003, seed=3)
    times = w.times()
    afternoon = np.isin(times.hour, [14, 15])
    dawn = np.isin(times.hour, [4, 5])
    for month in range(1, 13):
        in_month = times.month == month
        warmer = w.air_temp[afternoon & in_month].mean() - w.air_temp[dawn & in_month].mean()
        assert warmer > 3.0, month
        drier = w.rel_humidity[dawn & in_month].mean() - w.rel_humidity[afternoon & in_month].mean()
        assert drier > 10.0, month


def test_yamase_hours_blow_from_north_east_to_east_and_are_cool_and_humid():
    weathers = simulate_years(years=5, seed=11, year_type=YearType.COOL)
    yamase = np.concatenate([w.yamase for w in weathers])
    months = np.concatenate([w.times().month for w in weathers])
    summer = (months >= 6) & (months <= 8)
    direction = np.concatenate([w.wind_direction for w in weathers])
    air = np.concatenate([w.air_temp for w in weathers])
    rh = np.concatenate([w.rel_humidity for w in weathers])
    assert yamase.sum() > 24 * 10
    assert set(np.unique(months[yamase])) <= {6, 7, 8, 9}
    north_east_to_east = (direction[yamase] >= 22.5) & (direction[yamase] <= 112.5)
    assert north_east_to_east.mean() > 0.9
    westerly = (direction[summer & ~yamase] >= 180.0)
    assert westerly.mean() > 0.6
    assert air[summer & ~yamase].mean() - air[yamase].mean() > 2.5
    assert rh[yamase].mean() > rh[summer & ~yamase].mean() + 5.0


def test_hot_years_have_fewer_yamase_hours_than_cool_years():
    cool = sum(simulate_weather(year=2001, seed=s, year_type=YearType.COOL).yamase.sum()
               for s in range(10))
    hot = sum(simulate_weather(year=2001, seed=s, year_type=YearType.HOT).yamase.sum()
              for s in range(10))
    assert cool > 3 * hot


def test_leaf_is_wet_when_it_rains():
    w = simulate_weather(year=2003, seed=3)
    raining = w.precipitation > 0.0
    assert np.all(w.leaf_wetness[raining] == 1.0)
    dry_sunny = (w.precipitation == 0.0) & (w.solar_radiation > 400.0)
    assert w.leaf_wetness[dry_sunny].mean() < 0.2


def test_times_are_local_hours():
    w = simulate_weather(year=2004, seed=3)
    times = w.times()
    assert str(times.tz) == "Asia/Tokyo"
    assert times[0] == pd.Timestamp("2004-01-01 00:00", tz="Asia/Tokyo")
    assert times[-1] == pd.Timestamp("2004-12-31 23:00", tz="Asia/Tokyo")


def test_daily_table_has_one_row_per_local_day():
    w = simulate_weather(year=2004, seed=3)
    days = w.daily()
    assert list(days.columns) == DAILY_COLUMNS
    assert len(days) == 366
    assert str(days["date"].iloc[59]) == "2004-02-29"
    assert days["precipitation_mm"].sum() == pytest.approx(w.precipitation.sum())
    assert np.all(days["tmin"] <= days["tmean"]) and np.all(days["tmean"] <= days["tmax"])


def test_write_daily_csv_round_trip(tmp_path: Path):
    weathers = simulate_years(years=2, seed=8, first_year=2003)
    path = tmp_path / "daily.csv"
    write_daily_csv(weathers, path)
    back = pd.read_csv(path)
    assert list(back.columns) == DAILY_COLUMNS
    assert len(back) == 365 + 366
    assert back["date"].iloc[0] == "2003-01-01" and back["date"].iloc[-1] == "2004-12-31"
    expected = pd.concat([w.daily() for w in weathers], ignore_index=True)
    for column in DAILY_COLUMNS[1:]:
        np.testing.assert_allclose(back[column], expected[column], atol=0.006)


def test_arrays_are_read_only():
    w = simulate_weather(year=2003, seed=3)
    with pytest.raises(ValueError, match="read-only"):
        w.air_temp[0] = 0.0


def test_rejects_years_with_daylight_saving_time_and_empty_runs():
    with pytest.raises(ValueError, match="1952"):
        simulate_weather(year=1950, seed=1)
    with pytest.raises(ValueError, match="at least one year"):
        simulate_years(years=0, seed=1)
