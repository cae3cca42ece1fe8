"""Solar geometry: the sun's declination and elevation, and astronomical day length.

The platform's one source for where the sun is: the phenology's photoperiod
(:mod:`agri.analytics.phenology`) and the weather simulator's daylight and radiation
(:mod:`agri.simulator.weather`) both use these functions. Arrays broadcast; angles in
degrees at the interface, times as local standard (clock) time.

- Declination, equation of time and the orbital eccentricity factor: the Fourier series of
  Spencer (1971, Search 2(5):172) in the fractional year, as given in NOAA's general solar
  position calculations. Errors: about 0.035 deg in declination and 0.6 min in the
  equation of time, far below what the crop or the weather can tell.
- Elevation: sin h = sin(lat) sin(decl) + cos(lat) cos(decl) cos(hour angle), the hour angle
  from true solar time (clock time corrected for longitude and the equation of time).
- Sunrise and sunset: the sun's upper limb on the horizon, its centre
  ``SUNRISE_ELEVATION_DEG`` below it (refraction about 34' plus the solar radius 16'). Day
  length is the time the centre spends above that elevation, from the declination at local
  noon; it is the day length of the CBM model (Forsythe et al. 1995, Ecol Model 80:87-95)
  that SIMRIW's ports use, with Spencer's declination in place of CBM's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SUNRISE_ELEVATION_DEG", "day_length_h", "declination_rad", "eccentricity_factor",
           "equation_of_time_min", "fractional_year_rad", "sin_elevation"]

SUNRISE_ELEVATION_DEG = -0.8333  # centre of the sun at sunrise and sunset (NOAA; CBM)
DAYS_PER_YEAR = 365.0  # length of the year in Spencer's series
HOURS_PER_DAY = 24.0
NOON_H = 12.0
DEG_PER_HOUR = 15.0  # the earth turns 15 degrees an hour
MINUTES_PER_DEG = 4.0  # solar time gains 4 minutes per degree east of the standard meridian

ArrayLike = float | np.ndarray


def fractional_year_rad(day_of_year: ArrayLike, hour: ArrayLike = NOON_H) -> np.ndarray:
    """Spencer's fractional year, radians: 0 at noon of 1 January (``day_of_year`` 1-based,
    ``hour`` local clock time; a day's value at noon is the usual daily one)."""
    day = np.asarray(day_of_year, dtype=float)
    return 2.0 * np.pi / DAYS_PER_YEAR * (day - 1.0 + (np.asarray(hour) - NOON_H) / HOURS_PER_DAY)


def declination_rad(day_of_year: ArrayLike, hour: ArrayLike = NOON_H) -> np.ndarray:
    """Solar declination, radians (Spencer 1971)."""
    g = fractional_year_rad(day_of_year, hour)
    return (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g)
            - 0.006758 * np.cos(2 * g) + 0.000907 * np.sin(2 * g)
            - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))


def equation_of_time_min(day_of_year: ArrayLike, hour: ArrayLike = NOON_H) -> np.ndarray:
    """True minus mean solar time, minutes (Spencer 1971)."""
    g = fractional_year_rad(day_of_year, hour)
    return 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g)
                     - 0.014615 * np.cos(2 * g) - 0.040849 * np.sin(2 * g))


def eccentricity_factor(day_of_year: ArrayLike, hour: ArrayLike = NOON_H) -> np.ndarray:
    """(Mean sun-earth distance / actual distance) squared, the factor on the solar constant
    (Spencer 1971)."""
    g = fractional_year_rad(day_of_year, hour)
    return (1.000110 + 0.034221 * np.cos(g) + 0.001280 * np.sin(g)
            + 0.000719 * np.cos(2 * g) + 0.000077 * np.sin(2 * g))


def sin_elevation(*, latitude_deg: float, longitude_deg: float, standard_meridian_deg: float,
                  day_of_year: ArrayLike, hour: ArrayLike) -> np.ndarray:
    """Sine of the sun's elevation above the horizon at local clock ``hour`` (time of the
    zone whose meridian is ``standard_meridian_deg``, degrees east) of ``day_of_year``."""
    solar_time = np.asarray(hour, dtype=float) + (
        MINUTES_PER_DEG * (longitude_deg - standard_meridian_deg)
        + equation_of_time_min(day_of_year, hour)) / 60.0
    hour_angle = np.radians(DEG_PER_HOUR * (solar_time % HOURS_PER_DAY - NOON_H))
    declination = declination_rad(day_of_year, hour)
    latitude = np.radians(latitude_deg)
    return (np.sin(latitude) * np.sin(declination)
            + np.cos(latitude) * np.cos(declination) * np.cos(hour_angle))


def day_length_h(latitude_deg: float, day_of_year: ArrayLike) -> np.ndarray:
    """Astronomical day length, hours: sunrise to sunset (``SUNRISE_ELEVATION_DEG``), 0 in
    polar night and 24 under the midnight sun."""
    declination = declination_rad(day_of_year)
    latitude = np.radians(latitude_deg)
    cos_hour_angle = (np.sin(np.radians(SUNRISE_ELEVATION_DEG))
                      - np.sin(latitude) * np.sin(declination)) / (
        np.cos(latitude) * np.cos(declination))
    return 2.0 / DEG_PER_HOUR * np.degrees(np.arccos(np.clip(cos_hour_angle, -1.0, 1.0)))
