"""Hourly weather of the Tsugaru plain (Hirosaki AMeDAS station), simulated.

One call simulates one calendar year, hour 0 being local midnight of 1 January (Asia/Tokyo).
Every constant comes from :mod:`agri.simulator.climate`, with its source; what follows from
them alone (smooth daily curves, the year-type mix and anomalies, the sun's path from
:mod:`agri.analytics.solar`) from :mod:`agri.simulator.climatology`. The year is built day by
day, then spread over the hours; each step draws from its own random stream, spawned from
``(seed, year)``, so the same arguments always give identical arrays.

1. Year type. ``cool``, ``normal`` or ``hot`` shapes June-August. Unless given, it is drawn:
   cool with probability 0.15 (assumption), hot with the probability that makes the mix
   reproduce the June-August normal (about 0.19), normal otherwise.
2. Yamase, the cold, humid north-easterly to easterly wind from the Pacific in June-August
   (facts below). Episodes start as a daily Bernoulli (discrete Poisson) process from
   1 June to 31 August at a rate set by the year type (assumption: on average 0.05 / 0.015 /
   0.004 per day for cool / normal / hot, about 12 / 4 / 1 yamase days a season; in a cool
   season the rate rises from June to August, see below) and last a geometric number of
   days, mean 3 (assumption; about one episode in eleven lasts a week or more: "days to
   weeks"). Each episode is shifted by a random onset hour. While one is in force the daily
   mean temperature falls by 5 C (the Hachinohe contrast with westerlies), relative humidity
   rises by 18 points (read from "18 % more humid"), half of the sunshine goes (assumption:
   the Tsugaru side keeps more than the Pacific side) and with it part of the diurnal range,
   so days cool more than nights, and the wind blows from the east-north-east.
3. Precipitation. Wet and dry days follow a first-order Markov chain with monthly wet-day
   probabilities, amounts a gamma distribution (the WGEN scheme, Richardson & Wright 1984),
   scaled so that the year brings about 1,100 mm; a day's amount falls in one spell whose
   length follows from a random intensity.
4. Sunshine and radiation. A day's relative sunshine (share of the time the sun is up) is
   beta-distributed around the monthly value implied by the Aomori 1961-1990 sunshine
   normals, lower on wet days and during yamase; it is spread over the daylight hours, little
   of it in hours with precipitation. Global radiation is the extraterrestrial irradiance from
   the sun's position at the station times the Angstrom-Prescott factor (FAO-56).
5. Temperature. Daily mean = climatology + year-type anomaly - yamase cooling + AR(1)
   anomaly. The climatology is a smooth curve whose monthly means equal the Hirosaki
   1979-1990 normals after the expected effect of the year-type mix and of yamase has been
   added back, so that a long run reproduces the normals. Hours follow the diurnal cycle of
   Parton & Logan (1981), minimum at sunrise and maximum early in the afternoon, of a range
   that grows with sunshine.
6. Humidity. Vapour pressure follows temperature through the day only in part, so relative
   humidity peaks at dawn and dips mid-afternoon; higher on wet and yamase days, near
   saturation while it rains.
7. Wind. Speed: a monthly mean, day-to-day and hour-to-hour lognormal noise, strongest
   mid-afternoon. Direction: westerlies (west-north-west in winter), ENE in yamase hours.
8. Leaf wetness. Wet while it rains and in the hour after, and wet with dew in the dark when
   humidity is high and the wind light.

Facts followed (analytics/agronomy.py, sections 4 and 8): yamase blows in June-August, about 5 C
colder and 18 % more humid than the westerlies at Hachinohe; episodes last days to weeks;
the Tsugaru side, west of the Ou mountains, keeps more sunshine than the Pacific side.
Summers: Aomori's normal June-August mean is 20.2 C; 1993 (crop index 28, Tsugaru 45) had
18.3 C and 1980 (index 47) 19.2 C; a departure of -2 C or more has meant severe failure,
and a July or August mean at or below 20 C has meant crop failure in Tohoku. Hence the
season targets: cool near 18.5 C, normal near 20.5 C, hot near 23.0 C (Hirosaki normal,
20.7 C). Episode frequency and length are not published: the rates and the mean length
above are assumptions, chosen so that a season of a given type rarely strays more than
1 C from its target. The rest of a cool or hot season's departure is a background anomaly
over June-August (ramped over 15 days either side), derived exactly from the expected yamase
cooling of each type. Cool seasons grow colder as the summer goes on (assumption, read from
the failures of cool years, which came with a cold July or August, the months in which the
crop goes through meiosis and heading): both their episode rate and their background anomaly
follow a profile rising from June to August (``climate.SEASON_PROFILE``), so a cool season
runs about 1.0 C under a normal one in June, 2.0 C in July and 2.9 C in August: its July
(about 19 C) falls below the 20 C failure line and its August (about 20.5 C) comes near it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from agri.simulator import climate as cl
from agri.simulator.climatology import (
    HOURS_PER_DAY,
    Climatology,
    YearType,
    climatology,
    year_type_probabilities,
)

__all__ = ["DAILY_COLUMNS", "Weather", "YearType", "simulate_weather", "simulate_years",
           "write_daily_csv"]

LAST_YEAR = 2200
SUNSHINE_SCALING_ROUNDS = 12  # rounds of scale-and-clip that spread a day's sunshine
DAILY_COLUMNS = ("date", "tmean", "tmax", "tmin", "precipitation_mm", "sunshine_h", "wind_ms",
                 "rh")
_RUN_STREAM_KEY = 1  # tells the year-type stream of a run apart from those of its years
_STREAMS = ("year_type", "yamase", "precipitation", "sunshine", "temperature", "humidity",
            "wind")


@dataclass(frozen=True, slots=True)
class Weather:
    """Hourly weather of one calendar year at one station.

    Hour 0 = local midnight 1 January (Asia/Tokyo). Each value describes the hour that
    starts at its timestamp; the arrays are read-only.
    """

    year: int
    air_temp: np.ndarray  # Cel, one value per hour (8760 or 8784)
    rel_humidity: np.ndarray  # %RH 0..100
    precipitation: np.ndarray  # mm in the hour
    wind_speed: np.ndarray  # m/s, hourly mean
    wind_direction: np.ndarray  # degrees the wind blows from, 0..360
    solar_radiation: np.ndarray  # W/m2, hourly mean global irradiance
    sunshine: np.ndarray  # hours of bright sunshine in the hour, 0..1
    leaf_wetness: np.ndarray  # fraction of the hour a leaf-wetness sensor reads wet, 0..1
    yamase: np.ndarray  # bool per hour: a yamase episode is in force (the hidden truth)

    def __post_init__(self) -> None:
        hours = _days_in_year(self.year) * HOURS_PER_DAY
        for field in fields(self):
            if field.name == "year":
                continue
            values = np.array(getattr(self, field.name))  # a copy, frozen below
            if values.shape != (hours,):
                raise ValueError(f"{field.name} has shape {values.shape}; year {self.year} "
                                 f"needs ({hours},), one value per hour")
            values.setflags(write=False)
            object.__setattr__(self, field.name, values)

    def times(self) -> pd.DatetimeIndex:
        """Start of each hour, local time (Asia/Tokyo)."""
        start = pd.Timestamp(self.year, 1, 1, tz=cl.TIMEZONE)
        return pd.date_range(start, periods=self.air_temp.size, freq="h")

    def daily(self) -> pd.DataFrame:
        """One row per local day: date (``datetime.date``), tmean/tmax/tmin (C, from the 24
        hourly values), precipitation_mm, sunshine_h (h), wind_ms (mean m/s), rh (mean %RH).
        """
        days = self.air_temp.size // HOURS_PER_DAY

        def by_day(values: np.ndarray) -> np.ndarray:
            return values.reshape(days, HOURS_PER_DAY)

        first = date(self.year, 1, 1)
        return pd.DataFrame({
            "date": [first + timedelta(days=d) for d in range(days)],
            "tmean": by_day(self.air_temp).mean(axis=1),
            "tmax": by_day(self.air_temp).max(axis=1),
            "tmin": by_day(self.air_temp).min(axis=1),
            "precipitation_mm": by_day(self.precipitation).sum(axis=1),
            "sunshine_h": by_day(self.sunshine).sum(axis=1),
            "wind_ms": by_day(self.wind_speed).mean(axis=1),
            "rh": by_day(self.rel_humidity).mean(axis=1),
        }, columns=list(DAILY_COLUMNS))


def simulate_weather(*, year: int, seed: int, year_type: YearType | None = None) -> Weather:
    """Simulate the hourly weather of ``year`` at Hirosaki.

    ``year_type`` None draws the type from the climate mix. The same ``seed``, ``year`` and
    ``year_type`` always give identical arrays; apart from the type itself, a drawn year and
    a year given its drawn type are identical too.
    """
    _check_arguments(year=year, seed=seed)
    streams = dict(zip(_STREAMS, np.random.SeedSequence([seed, year]).spawn(len(_STREAMS)),
                       strict=True))
    rng = {name: np.random.default_rng(stream) for name, stream in streams.items()}
    if year_type is None:
        year_type = _draw_year_type(rng["year_type"])
    return _simulate(year=year, year_type=YearType(year_type), rng=rng)


def simulate_years(*, years: int, seed: int, first_year: int = 2001,
                   year_type: YearType | None = None) -> list[Weather]:
    """Simulate ``years`` consecutive years starting at ``first_year``.

    With ``year_type`` None the run's year types are drawn by systematic sampling of the
    climate mix (each year keeps the mix's probabilities, and the counts of cool and hot
    years in the run stay within one of their expectation), then shuffled; year i is then
    ``simulate_weather(year=first_year + i, seed=seed, year_type=<its type>)``.
    """
    if years < 1:
        raise ValueError(f"years={years}: simulate at least one year")
    _check_arguments(year=first_year + years - 1, seed=seed)
    if year_type is None:
        types = _systematic_year_types(years=years, seed=seed, first_year=first_year)
    else:
        types = [YearType(year_type)] * years
    return [simulate_weather(year=first_year + i, seed=seed, year_type=t)
            for i, t in enumerate(types)]


def write_daily_csv(weathers: list[Weather], path: Path) -> None:
    """Write the daily table of each year, in order, to one CSV file (columns DAILY_COLUMNS)."""
    frame = pd.concat([w.daily() for w in weathers], ignore_index=True)
    frame.to_csv(path, index=False, float_format="%.2f")


# --- The year, step by step --------------------------------------------------------------


def _simulate(*, year: int, year_type: YearType, rng: dict[str, np.random.Generator]) -> Weather:
    """Steps 2-8 of the module docstring; arrays are (days, 24) until the end."""
    cal = climatology(_days_in_year(year))
    yamase = _yamase_hours(rng["yamase"], cal, year_type)
    yamase_share = _by_day(yamase).mean(axis=1)  # share of each day in yamase, 0..1
    wet, amount = _daily_precipitation(rng["precipitation"], cal)
    rain = _hourly_precipitation(rng["precipitation"], cal, amount)
    rel_day = _daily_relative_sunshine(rng["sunshine"], cal, wet, yamase_share)
    rel_hour = _hourly_relative_sunshine(rng["sunshine"], cal, rel_day, rain)
    radiation = cal.extraterrestrial * (cl.ANGSTROM_A + cl.ANGSTROM_B * rel_hour)
    tmean = _daily_mean_temperature(rng["temperature"], cal, year_type, yamase_share)
    air = _hourly_temperature(cal, tmean, _diurnal_range(cal, rel_day))
    rh = _relative_humidity(rng["humidity"], cal, tmean, air, wet, yamase_share, rain)
    speed, direction = _wind(rng["wind"], cal, yamase)
    leaf = _leaf_wetness(rain, rh, speed, radiation)
    return Weather(
        year=year, air_temp=air.ravel(), rel_humidity=rh.ravel(),
        precipitation=rain.ravel(), wind_speed=speed.ravel(),
        wind_direction=direction.ravel(), solar_radiation=radiation.ravel(),
        sunshine=(rel_hour * cal.possible).ravel(), leaf_wetness=leaf.ravel(),
        yamase=yamase.ravel(),
    )


def _yamase_hours(rng: np.random.Generator, cal: Climatology, year_type: YearType) -> np.ndarray:
    """(days, 24) bool: episodes as a day-level chain, each shifted by a random onset hour
    (``climatology.expected_yamase_share`` is its exact expectation: change both together)."""
    start = cal.yamase_start_probability[year_type]
    stop = 1.0 / cl.YAMASE_MEAN_DURATION_DAYS
    u = rng.random(cal.days)
    on = np.zeros(cal.days, dtype=bool)
    state = False
    for d in range(cal.days):
        state = bool(u[d] >= stop) if state else bool(u[d] < start[d])
        on[d] = state
    first = np.flatnonzero(on & ~np.r_[False, on[:-1]])
    last = np.flatnonzero(on & ~np.r_[on[1:], False])
    onset = rng.integers(0, HOURS_PER_DAY, size=first.size)
    edges = np.zeros(cal.days * HOURS_PER_DAY + 1)
    np.add.at(edges, first * HOURS_PER_DAY + onset, 1.0)
    np.add.at(edges, np.minimum((last + 1) * HOURS_PER_DAY + onset, edges.size - 1), -1.0)
    return _by_day(np.cumsum(edges[:-1]) > 0.5)


def _daily_precipitation(rng: np.random.Generator, cal: Climatology) -> tuple[np.ndarray, ...]:
    """Wet-day flags (Markov chain) and daily totals, mm (gamma)."""
    p = cal.wet_probability
    rho = cl.WET_DAY_PERSISTENCE
    after_dry, after_wet = p * (1.0 - rho), p + rho * (1.0 - p)
    u = rng.random(cal.days)
    wet = np.zeros(cal.days, dtype=bool)
    state = bool(rng.random() < p[-1])  # 31 December of the year before
    for d in range(cal.days):
        state = bool(u[d] < (after_wet[d] if state else after_dry[d]))
        wet[d] = state
    shape = cl.PRECIPITATION_GAMMA_SHAPE
    amount = rng.gamma(shape, cal.wet_day_mean_mm / shape) * wet
    return wet, amount


def _hourly_precipitation(rng: np.random.Generator, cal: Climatology,
                          amount: np.ndarray) -> np.ndarray:
    """(days, 24) mm: each day's total falls in one spell of random intensity."""
    k = cl.PRECIPITATION_INTENSITY_GAMMA_SHAPE
    intensity = rng.gamma(k, cal.intensity_mm_h / k)
    hours = np.clip(np.ceil(amount / intensity), 1, HOURS_PER_DAY)
    start = np.floor(rng.random(cal.days) * (HOURS_PER_DAY + 1 - hours))
    hour = np.arange(HOURS_PER_DAY)
    spell = (hour >= start[:, None]) & (hour < (start + hours)[:, None])
    weight = rng.gamma(k, 1.0, size=spell.shape) * spell
    return weight / weight.sum(axis=1, keepdims=True) * amount[:, None]


def _daily_relative_sunshine(rng: np.random.Generator, cal: Climatology, wet: np.ndarray,
                             yamase_share: np.ndarray) -> np.ndarray:
    """Share of the possible sunshine each day receives, 0..1 (beta-distributed)."""
    mean = cal.dry_day_sunshine * np.where(wet, cl.WET_DAY_SUNSHINE_SHARE, 1.0)
    mean = np.clip(mean * (1.0 - cl.YAMASE_SUNSHINE_CUT * yamase_share), 0.005, 0.95)
    k = cl.SUNSHINE_BETA_CONCENTRATION
    return rng.beta(k * mean, k * (1.0 - mean))


def _hourly_relative_sunshine(rng: np.random.Generator, cal: Climatology, rel_day: np.ndarray,
                              rain: np.ndarray) -> np.ndarray:
    """(days, 24) share of each hour's possible sunshine that is bright, 0..1.

    Hours vary around the day's share, and hours with precipitation get little of it; the
    scaling keeps the day's total.
    """
    sd = cl.SUNSHINE_HOUR_SD_LOG
    noise = np.exp(sd * rng.standard_normal(rain.shape) - sd**2 / 2.0)
    share = rel_day[:, None] * noise * np.where(rain > 0.0, cl.RAIN_HOUR_SUNSHINE_WEIGHT, 1.0)
    target = rel_day * cal.possible.sum(axis=1)
    for _ in range(SUNSHINE_SCALING_ROUNDS):
        held = (share * cal.possible).sum(axis=1)
        scale = np.divide(target, held, out=np.zeros_like(held), where=held > 0.0)
        share = np.clip(share * scale[:, None], 0.0, 1.0)
    return share


def _daily_mean_temperature(rng: np.random.Generator, cal: Climatology, year_type: YearType,
                            yamase_share: np.ndarray) -> np.ndarray:
    """Daily mean temperature, C."""
    phi = cl.TEMP_ANOMALY_LAG1
    innovation = np.sqrt(1.0 - phi**2) * rng.standard_normal(cal.days)
    anomaly = np.empty(cal.days)
    x = rng.standard_normal()  # stationary start
    for d in range(cal.days):
        x = phi * x + innovation[d]
        anomaly[d] = x
    return (cal.background_temp + cal.season_anomaly[year_type]
            - cl.YAMASE_COOLING_C * yamase_share + cal.anomaly_sd * anomaly)


def _diurnal_range(cal: Climatology, rel_day: np.ndarray) -> np.ndarray:
    """Daily max - min, C: wider on sunny days."""
    share = cl.DIURNAL_RANGE_OVERCAST_SHARE
    return cal.clear_day_range * (share + (1.0 - share) * rel_day)


def _hourly_temperature(cal: Climatology, tmean: np.ndarray, diurnal_range: np.ndarray
                        ) -> np.ndarray:
    """(days, 24) C: daily means and ranges joined smoothly, through the diurnal shape."""
    level = _noon_interpolation(cal, tmean)
    return level + _noon_interpolation(cal, diurnal_range) * cal.diurnal_shape


def _relative_humidity(rng: np.random.Generator, cal: Climatology, tmean: np.ndarray,
                       air: np.ndarray, wet: np.ndarray, yamase_share: np.ndarray,
                       rain: np.ndarray) -> np.ndarray:
    """(days, 24) %RH from the day's vapour pressure and the hour's temperature.

    Vapour pressure follows temperature through the day only partly (evaporation by day,
    dew at night), so relative humidity rises as the air cools and falls as it warms.
    """
    day_rh = (cal.dry_day_rh + cl.WET_DAY_RH_RISE_PCT * wet
              + cl.YAMASE_HUMIDITY_RISE_PCT * yamase_share
              + cl.DAY_RH_SD_PCT * rng.standard_normal(cal.days))
    day_rh = np.clip(day_rh, 20.0, 98.0) / 100.0
    mean_saturation = _saturation_hpa(_noon_interpolation(cal, tmean))
    hour_saturation = _saturation_hpa(air)
    rh = 100.0 * _noon_interpolation(cal, day_rh) * (hour_saturation / mean_saturation) ** (
        cl.VAPOUR_DIURNAL_COUPLING - 1.0)
    rh = rh + cl.HOUR_RH_SD_PCT * rng.standard_normal(rh.shape)
    while_raining = rng.uniform(cl.RAIN_HOUR_MIN_RH_PCT, cl.RAIN_HOUR_MAX_RH_PCT, rh.shape)
    rh = np.where(rain > 0.0, np.maximum(rh, while_raining), rh)
    return np.clip(rh, 5.0, 100.0)


def _wind(rng: np.random.Generator, cal: Climatology, yamase: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    """(days, 24) speed, m/s, and direction the wind blows from, degrees."""
    day_sd, hour_sd = cl.WIND_DAY_SD_LOG, cl.WIND_HOUR_SD_LOG
    day = cal.wind_mean * np.exp(day_sd * rng.standard_normal(cal.days) - day_sd**2 / 2)
    hour = np.exp(hour_sd * rng.standard_normal(yamase.shape) - hour_sd**2 / 2)
    speed = _noon_interpolation(cal, day) * cal.wind_diurnal * hour
    prevailing = rng.vonmises(cal.prevailing_rad, cl.WIND_DAY_CONCENTRATION)
    westerly = prevailing[:, None] + rng.vonmises(0.0, cl.WIND_HOUR_CONCENTRATION, yamase.shape)
    easterly = rng.vonmises(np.radians(cl.YAMASE_WIND_FROM_DEG), cl.YAMASE_WIND_CONCENTRATION,
                            yamase.shape)
    direction = np.degrees(np.where(yamase, easterly, westerly)) % 360.0
    return speed, direction


def _leaf_wetness(rain: np.ndarray, rh: np.ndarray, wind: np.ndarray,
                  radiation: np.ndarray) -> np.ndarray:
    """(days, 24) share of each hour a leaf-wetness sensor reads wet, 0..1."""
    raining = (rain > 0.0).ravel()
    dark = (radiation < cl.DEW_MAX_RADIATION_W_M2).ravel()
    humid = rh.ravel() >= cl.DEW_RH_FULL_PCT
    after_rain = np.r_[False, raining[:-1]] * np.where(dark | humid, 1.0,
                                                      cl.AFTER_RAIN_SUNLIT_WET_SHARE)
    dew = (np.clip((rh.ravel() - cl.DEW_RH_START_PCT)
                   / (cl.DEW_RH_FULL_PCT - cl.DEW_RH_START_PCT), 0.0, 1.0)
           * np.clip((cl.DEW_WINDY_MS - wind.ravel())
                     / (cl.DEW_WINDY_MS - cl.DEW_CALM_MS), 0.0, 1.0) * dark)
    wetness = np.maximum.reduce([raining.astype(float), after_rain, dew])
    return wetness.reshape(rain.shape)


# --- Year types ---------------------------------------------------------------------------


def _draw_year_type(rng: np.random.Generator) -> YearType:
    probabilities = year_type_probabilities()
    types = list(probabilities)
    return types[int(rng.choice(len(types), p=list(probabilities.values())))]


def _systematic_year_types(*, years: int, seed: int, first_year: int) -> list[YearType]:
    probabilities = year_type_probabilities()
    types = list(probabilities)
    rng = np.random.default_rng([seed, first_year, years, _RUN_STREAM_KEY])
    points = (rng.random() + np.arange(years)) / years
    index = np.searchsorted(np.cumsum(list(probabilities.values())), points, side="right")
    rng.shuffle(index)
    return [types[min(int(i), len(types) - 1)] for i in index]


# --- Helpers ------------------------------------------------------------------------------


def _check_arguments(*, year: int, seed: int) -> None:
    if not cl.FIRST_YEAR_WITHOUT_DST <= year <= LAST_YEAR:
        raise ValueError(f"year={year}: simulate years {cl.FIRST_YEAR_WITHOUT_DST}-{LAST_YEAR}"
                         " (Japan kept daylight saving time before 1952)")
    if seed < 0:
        raise ValueError(f"seed={seed}: use a non-negative integer seed")


def _days_in_year(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


def _by_day(hourly: np.ndarray) -> np.ndarray:
    return hourly.reshape(-1, HOURS_PER_DAY)


def _noon_interpolation(cal: Climatology, daily: np.ndarray) -> np.ndarray:
    """(days, 24): daily values placed at noon, linearly interpolated to the hours."""
    hours = np.arange(cal.days * HOURS_PER_DAY) + 0.5
    noon = np.arange(cal.days) * HOURS_PER_DAY + HOURS_PER_DAY / 2.0
    return _by_day(np.interp(hours, noon, daily))


def _saturation_hpa(temp_c: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure over water, hPa (Magnus form, WMO-No. 8, 2018)."""
    return 6.112 * np.exp(17.62 * temp_c / (243.12 + temp_c))
