"""The daily climatology behind the weather generator (``agri.simulator.weather``).

Everything here depends only on the constants of :mod:`agri.simulator.climate` and on the
length of the year, so it is computed once per year length and cached: smooth daily curves
whose monthly means are the calibration targets, the year-type mix and each type's season
anomaly, the expected effect of yamase, and the sun's daily path at the station (from
:mod:`agri.analytics.solar`). The generator adds the random weather of one year to it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import numpy as np

from agri.analytics import solar
from agri.simulator import climate as cl

__all__ = ["HOURS_PER_DAY", "Climatology", "YearType", "by_month", "climatology",
           "expected_yamase_share", "year_type_probabilities"]

HOURS_PER_DAY = 24
SUN_SAMPLES_PER_HOUR = 12  # sub-hourly steps when averaging the sun's position
SUMMER_MONTHS = (6, 7, 8)  # the season the year type describes


class YearType(StrEnum):
    """Character of the summer (June-August) of a simulated year."""

    COOL = "cool"
    NORMAL = "normal"
    HOT = "hot"


@dataclass(frozen=True, slots=True)
class Climatology:
    """Daily and hourly climatology of a year of ``days`` days (arrays per day, or
    (days, 24) per hour)."""

    days: int
    month: np.ndarray  # month of each day, 1..12
    possible: np.ndarray  # (days, 24) share of each hour the sun is up, 0..1
    extraterrestrial: np.ndarray  # (days, 24) W/m2 on a horizontal surface, hourly mean
    diurnal_shape: np.ndarray  # (days, 24) temperature cycle of range 1, daily mean 0
    wind_diurnal: np.ndarray  # (days, 24) relative wind speed through the day
    background_temp: np.ndarray  # C, daily mean before year-type anomaly and yamase
    season_anomaly: dict[YearType, np.ndarray]  # C, added to the daily mean
    yamase_start_probability: dict[YearType, np.ndarray]  # per day
    anomaly_sd: np.ndarray  # C
    clear_day_range: np.ndarray  # C, diurnal range of a day of full sunshine
    wet_probability: np.ndarray
    wet_day_mean_mm: np.ndarray
    intensity_mm_h: np.ndarray
    dry_day_sunshine: np.ndarray  # mean relative sunshine of a dry day without yamase
    dry_day_rh: np.ndarray  # %RH
    wind_mean: np.ndarray  # m/s
    prevailing_rad: np.ndarray  # direction the wind blows from outside yamase


def year_type_probabilities() -> dict[YearType, float]:
    """Climate mix: cool as configured, hot so the mix hits the June-August normal."""
    target = {YearType(k): v for k, v in cl.JJA_TARGET_C.items()}
    days = np.array([30, 31, 31])
    normal_jja = float(np.dot(days, [cl.MEAN_TEMP_C[m - 1] for m in SUMMER_MONTHS])
                       / days.sum())
    cool = cl.COOL_YEAR_PROBABILITY
    hot = (normal_jja - target[YearType.NORMAL]
           - cool * (target[YearType.COOL] - target[YearType.NORMAL])) / (
        target[YearType.HOT] - target[YearType.NORMAL])
    return {YearType.COOL: cool, YearType.NORMAL: 1.0 - cool - hot, YearType.HOT: hot}


@functools.cache
def climatology(days: int) -> Climatology:
    """The climatology of a year of ``days`` days (365 or 366)."""
    month = _month_of_day(days)
    per_month = np.bincount(month, minlength=13)[1:]
    possible, extraterrestrial, sunrise, sunset = _sun(days)
    yamase_start = {t: _yamase_start_probability(month, t) for t in YearType}
    expected_yamase = {t: expected_yamase_share(p) for t, p in yamase_start.items()}
    season_anomaly = _season_anomalies(month, expected_yamase)
    mix = year_type_probabilities()
    correction = sum(mix[t] * (cl.YAMASE_COOLING_C * expected_yamase[t] - season_anomaly[t])
                     for t in YearType)
    rel_sunshine = _monthly_relative_sunshine(month, possible)
    wet_p = by_month(month, cl.WET_DAY_PROBABILITY)
    expected_sunshine_factor = (1.0 - wet_p * (1.0 - cl.WET_DAY_SUNSHINE_SHARE)) * (
        1.0 - cl.YAMASE_SUNSHINE_CUT * sum(mix[t] * expected_yamase[t] for t in YearType))
    share = cl.DIURNAL_RANGE_OVERCAST_SHARE
    monthly_mm = (np.asarray(cl.PRECIPITATION_SHARE) / np.sum(cl.PRECIPITATION_SHARE)
                  * cl.ANNUAL_PRECIPITATION_MM)
    return Climatology(
        days=days,
        month=month,
        possible=possible,
        extraterrestrial=extraterrestrial,
        diurnal_shape=_diurnal_shape(sunrise, sunset),
        wind_diurnal=1.0 + cl.WIND_DIURNAL_AMPLITUDE * np.cos(
            2.0 * np.pi * (np.arange(HOURS_PER_DAY) + 0.5 - cl.WIND_PEAK_HOUR) / HOURS_PER_DAY),
        background_temp=_smooth_monthly(month, cl.MEAN_TEMP_C) + correction,
        season_anomaly=season_anomaly,
        yamase_start_probability=yamase_start,
        anomaly_sd=_smooth_monthly(month, cl.TEMP_ANOMALY_SD_C),
        clear_day_range=_smooth_monthly(month, cl.DIURNAL_RANGE_C)
        / (share + (1.0 - share) * rel_sunshine),
        wet_probability=wet_p,
        wet_day_mean_mm=by_month(month, monthly_mm / per_month) / wet_p,
        intensity_mm_h=by_month(month, cl.PRECIPITATION_INTENSITY_MM_H),
        dry_day_sunshine=rel_sunshine / expected_sunshine_factor,
        dry_day_rh=_smooth_monthly(month, cl.DRY_DAY_RH_PCT),
        wind_mean=_smooth_monthly(month, cl.WIND_MEAN_MS),
        prevailing_rad=np.radians(by_month(month, cl.PREVAILING_WIND_FROM_DEG)),
    )


def expected_yamase_share(start: np.ndarray) -> np.ndarray:
    """Expected share of each day in yamase, exactly, for the episode process of the
    generator: a day-level chain that starts with probability ``start`` per day and stops
    with 1 / YAMASE_MEAN_DURATION_DAYS, each episode shifted by a uniform onset hour."""
    stop = 1.0 / cl.YAMASE_MEAN_DURATION_DAYS
    on = np.empty(start.size)
    p = 0.0
    for d in range(start.size):
        p = p * (1.0 - stop) + (1.0 - p) * start[d]
        on[d] = p
    late = (HOURS_PER_DAY - 1) / 2.0 / HOURS_PER_DAY  # mean onset hour / 24
    return (1.0 - late) * on + late * np.r_[0.0, on[:-1]]


def by_month(month: np.ndarray, monthly: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Monthly values as a step function over the days."""
    return np.asarray(monthly, dtype=float)[month - 1]


# --- Year types and yamase ----------------------------------------------------------------


def _yamase_start_probability(month: np.ndarray, year_type: YearType) -> np.ndarray:
    """Episode start probability per day: the type's rate, shaped by its SEASON_PROFILE
    (mean 1 over the yamase season)."""
    in_season = np.isin(month, cl.YAMASE_SEASON_MONTHS)
    profile = _season_profile(month, cl.SEASON_PROFILE[year_type.value])
    return (cl.YAMASE_START_RATE_PER_DAY[year_type.value] * in_season
            * profile / float(profile[in_season].mean()))


def _season_anomalies(month: np.ndarray, expected_yamase: dict[YearType, np.ndarray]
                      ) -> dict[YearType, np.ndarray]:
    """Background anomaly of each year type, C, so its expected Jun-Aug mean is its target.

    Normal years get none; cool and hot years make up what their yamase does not, spread
    over the season by the type's SEASON_PROFILE.
    """
    summer = np.isin(month, SUMMER_MONTHS)
    window = _season_window(month)
    cooling = {t: cl.YAMASE_COOLING_C * float(expected_yamase[t][summer].mean())
               for t in YearType}
    target = {YearType(k): v for k, v in cl.JJA_TARGET_C.items()}
    normal = YearType.NORMAL
    anomalies = {}
    for t in YearType:
        shape = window * _season_profile(month, cl.SEASON_PROFILE[t.value])
        departure = target[t] - target[normal] + cooling[t] - cooling[normal]
        anomalies[t] = departure / float(shape[summer].mean()) * shape
    return anomalies


def _season_window(month: np.ndarray) -> np.ndarray:
    """1 from June to August, ramping linearly to 0 over the days either side."""
    summer = np.flatnonzero(np.isin(month, SUMMER_MONTHS))
    day = np.arange(month.size)
    ramp = cl.SEASON_ANOMALY_RAMP_DAYS + 1.0
    before = np.clip(1.0 - (summer[0] - day) / ramp, 0.0, 1.0)
    after = np.clip(1.0 - (day - summer[-1]) / ramp, 0.0, 1.0)
    return np.minimum(before, after)


def _season_profile(month: np.ndarray, weights: tuple[float, float, float]) -> np.ndarray:
    """Weights at the middle of June, July and August, linear between, held beyond."""
    centre = np.arange(month.size) + 0.5
    middles = [float(centre[month == m].mean()) for m in SUMMER_MONTHS]
    return np.interp(centre, middles, weights)


# --- Sunshine and the sun -----------------------------------------------------------------


def _monthly_relative_sunshine(month: np.ndarray, possible: np.ndarray) -> np.ndarray:
    """Each day's month's sunshine normal over the month's possible hours."""
    possible_by_month = np.bincount(month, weights=possible.sum(axis=1), minlength=13)[1:]
    return by_month(month, np.asarray(cl.SUNSHINE_H) / possible_by_month)


def _sun(days: int) -> tuple[np.ndarray, ...]:
    """Possible-sunshine share and extraterrestrial irradiance per hour; sunrise and sunset,
    clock hours, per day."""
    step = 1.0 / SUN_SAMPLES_PER_HOUR
    clock = np.arange(days * HOURS_PER_DAY * SUN_SAMPLES_PER_HOUR) * step + step / 2.0
    day_of_year, hour = clock // HOURS_PER_DAY + 1.0, clock % HOURS_PER_DAY
    sin_elevation = solar.sin_elevation(
        latitude_deg=cl.LATITUDE_DEG, longitude_deg=cl.LONGITUDE_DEG,
        standard_meridian_deg=cl.STANDARD_MERIDIAN_DEG, day_of_year=day_of_year, hour=hour)
    shape = (days, HOURS_PER_DAY, SUN_SAMPLES_PER_HOUR)
    up = sin_elevation > np.sin(np.radians(solar.SUNRISE_ELEVATION_DEG))
    possible = up.reshape(shape).mean(axis=2)
    irradiance = (cl.SOLAR_CONSTANT_W_M2 * solar.eccentricity_factor(day_of_year, hour)
                  * np.clip(sin_elevation, 0.0, None))
    extraterrestrial = irradiance.reshape(shape).mean(axis=2)
    up_by_day = up.reshape(days, -1)
    sunrise = np.argmax(up_by_day, axis=1) * step
    sunset = HOURS_PER_DAY - np.argmax(up_by_day[:, ::-1], axis=1) * step
    return possible, extraterrestrial, sunrise, sunset


def _diurnal_shape(sunrise: np.ndarray, sunset: np.ndarray) -> np.ndarray:
    """(days, 24) diurnal temperature cycle of range 1, less its daily mean.

    Parton & Logan (1981): a sine from the minimum at sunrise, peaking a lag after solar
    noon, down to sunset; then an exponential decay to the next sunrise.
    """
    t = np.arange(HOURS_PER_DAY) + 0.5
    rise, fall = sunrise[:, None], sunset[:, None]
    day_length = fall - rise
    lag = cl.PARTON_LOGAN_MAX_LAG_H
    day = np.sin(np.pi * (t - rise) / (day_length + 2.0 * lag))
    at_sunset = np.sin(np.pi * day_length / (day_length + 2.0 * lag))
    night_length = HOURS_PER_DAY - day_length
    since_sunset = (t - fall) % HOURS_PER_DAY
    decay = cl.PARTON_LOGAN_NIGHT_DECAY
    night = at_sunset * (np.exp(-decay * since_sunset / night_length) - np.exp(-decay)) / (
        1.0 - np.exp(-decay))
    shape = np.where((t >= rise) & (t < fall), day, night)
    return shape - shape.mean(axis=1, keepdims=True)


# --- Calendar -----------------------------------------------------------------------------


def _month_of_day(days: int) -> np.ndarray:
    year = 2000 if days == 366 else 2001
    first = date(year, 1, 1)
    return np.array([(first + timedelta(days=d)).month for d in range(days)])


def _smooth_monthly(month: np.ndarray, monthly: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Smooth daily curve whose mean over each calendar month equals the monthly value.

    Piecewise linear between mid-month nodes (cyclic over the year); the node values solve
    the 12 equations "month mean of the curve = monthly value".
    """
    days = month.size
    centre = np.arange(days) + 0.5
    mid = np.array([centre[month == m].mean() for m in range(1, 13)])
    nodes_x = np.r_[mid[-1] - days, mid, mid[0] + days]
    basis = np.empty((days, 12))
    for k in range(12):
        unit = np.zeros(12)
        unit[k] = 1.0
        basis[:, k] = np.interp(centre, nodes_x, np.r_[unit[-1], unit, unit[0]])
    averaging = np.stack([(month == m) / np.sum(month == m) for m in range(1, 13)])
    nodes = np.linalg.solve(averaging @ basis, np.asarray(monthly, dtype=float))
    return basis @ nodes
