"""Rice blast: BLASTAM (Koshimizu 1988), the daily infection classification
from hourly weather.

Each night from 16:00 to 07:00 (Asia/Tokyo) gets a leaf-wetness period,
estimated from the weather (rain starts it one hour early; wind, sunshine and
heavy rain end it, by the rules in :mod:`agri.analytics.agronomy`) or read
from a leaf-wetness sensor where the station has one. The day the night
starts on is then classified from the period's length, its mean temperature
and the 5-day mean temperature. A favourable day means first lesions about
7-10 days later: scout then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag
from agri.clock import TZ

# An hour counts as wet when the sensor read wet at least this fraction of it
# (the platform's leaf_wetness metric is the wet fraction of each record).
SENSOR_WET_FRACTION = 0.5
NIGHT_HOURS = 15  # 16:00 to 07:00


class BlastRisk(StrEnum):
    FAVOURABLE = "favourable"
    SUB_FAVOURABLE = "sub-favourable"
    NOT_FAVOURABLE = "not favourable"


@dataclass(frozen=True, slots=True)
class Night:
    """The wetness period of the night that starts on ``day`` at 16:00."""

    day: date
    wet_hours: int
    wet_mean_c: float  # mean air temperature during wetness; NaN without wetness
    source: str  # "sensor" or "weather"


def min_wetness_hours(mean_c: float) -> int | None:
    """Hours of wetness needed at a mean temperature during wetness (the
    published table, by whole degrees); None outside 15-25 C."""
    low, high = ag.BLASTAM_WETNESS_TEMP_C
    if not low <= mean_c <= high:
        return None
    return ag.BLASTAM_MIN_WETNESS_HOURS[math.floor(mean_c)]


def classify(*, wet_hours: float, wet_mean_c: float, five_day_mean_c: float) -> BlastRisk:
    """BLASTAM's class of one day."""
    if wet_hours < ag.BLASTAM_SUBFAVOURABLE_MIN_HOURS:
        return BlastRisk.NOT_FAVOURABLE
    needed = min_wetness_hours(wet_mean_c)
    low, high = ag.BLASTAM_FIVE_DAY_MEAN_C
    if needed is not None and wet_hours >= needed and low <= five_day_mean_c < high:
        return BlastRisk.FAVOURABLE
    return BlastRisk.SUB_FAVOURABLE


def _effective_wind(wind_ms: float, rain_mm: float) -> float:
    """3 m/s with rain counts as 2 m/s: rain lowers the wind's drying by 1 m/s."""
    if rain_mm > 0:
        return wind_ms - (ag.BLASTAM_WIND_SUSTAINED_MS - ag.BLASTAM_WIND_WITH_RAIN_MS)
    return wind_ms


def weather_wetness(night: pd.DataFrame) -> list[bool]:
    """Wet or not for each of the night's hours (16:00 ... 06:00 starts), from
    columns ``air_temp`` (Cel), ``precipitation`` (mm/h), ``wind_speed`` (m/s)
    and ``sunshine`` (h). Wetness starts one hour before the first rain of the
    window and lasts to 07:00 unless one of the published breaks ends it."""
    rain = night["precipitation"].fillna(0.0).to_numpy()
    wind = night["wind_speed"].fillna(0.0).to_numpy()
    sun = night["sunshine"].fillna(0.0).to_numpy()
    hours = [t.hour for t in night.index]
    wet = [False] * len(night)
    rainy = np.flatnonzero(rain > 0)
    if not len(rainy):
        return wet
    start = max(int(rainy[0]) - 1, 0)
    windy_run = heavy_run = 0
    dawn_low, dawn_high = ag.BLASTAM_DAWN_HOURS
    for i in range(start, len(night)):
        w = _effective_wind(float(wind[i]), float(rain[i]))
        windy_run = windy_run + 1 if w >= ag.BLASTAM_WIND_SUSTAINED_MS else 0
        heavy_run = heavy_run + 1 if rain[i] >= ag.BLASTAM_WASHOFF_SUSTAINED_MM_H else 0
        ends = (w >= ag.BLASTAM_WIND_BREAK_MS
                or windy_run >= ag.BLASTAM_WIND_SUSTAINED_HOURS
                or (dawn_low <= hours[i] < dawn_high and w >= ag.BLASTAM_WIND_SUSTAINED_MS)
                or sun[i] > ag.BLASTAM_SUNSHINE_BREAK_H
                or rain[i] >= ag.BLASTAM_WASHOFF_MM_H
                or heavy_run >= ag.BLASTAM_WASHOFF_SUSTAINED_HOURS)
        if ends:
            break
        wet[i] = True
    return wet


def sensor_wetness(night: pd.DataFrame) -> list[bool]:
    """Wet or not for each hour from the ``leaf_wetness`` column (wet fraction)."""
    return [bool(v >= SENSOR_WET_FRACTION) for v in night["leaf_wetness"].fillna(0.0)]


def _longest_run(flags: list[bool]) -> tuple[int, int]:
    """(start, length) of the longest run of True."""
    best = (0, 0)
    start = None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > best[1]:
                best = (start, i - start)
            start = None
    return best


def nights(hourly: pd.DataFrame) -> list[Night]:
    """The wetness period of every night in ``hourly`` (hourly rows, a
    time-zone-aware index; columns as :func:`weather_wetness` takes, plus
    ``leaf_wetness`` where a sensor reports). A night whose sensor hours are
    all present uses the sensor; otherwise the weather."""
    local = hourly.tz_convert(TZ)
    out = []
    for day in sorted({t.date() for t in local.index}):
        start = pd.Timestamp(day, tz=TZ) + pd.Timedelta(hours=16)
        span = pd.date_range(start, periods=NIGHT_HOURS, freq="h")
        night = local.reindex(span)
        if night["air_temp"].isna().all():
            continue
        has_sensor = "leaf_wetness" in night and night["leaf_wetness"].notna().all()
        flags = sensor_wetness(night) if has_sensor else weather_wetness(night)
        first, length = _longest_run(flags)
        temps = night["air_temp"].iloc[first:first + length]
        out.append(Night(day, length, float(temps.mean()) if length else float("nan"),
                         "sensor" if has_sensor else "weather"))
    return out


def daily_risk(hourly: pd.DataFrame) -> pd.DataFrame:
    """One row per night: wetness hours, their mean temperature, the 5-day
    mean temperature (the day and the four before it), the class, and the
    day from which to scout for first lesions."""
    local = hourly.tz_convert(TZ)
    daily_mean = local["air_temp"].groupby(local.index.date).mean()
    five_day = daily_mean.rolling(5, min_periods=5).mean()
    rows = []
    for n in nights(hourly):
        five = float(five_day.get(n.day, float("nan")))
        risk = (classify(wet_hours=n.wet_hours, wet_mean_c=n.wet_mean_c, five_day_mean_c=five)
                if not math.isnan(five) else None)
        scout = (pd.Timestamp(n.day) + pd.Timedelta(days=ag.BLASTAM_LESION_LAG_DAYS[0])).date()
        rows.append({"day": n.day, "wet_hours": n.wet_hours, "wet_mean_c": n.wet_mean_c,
                     "five_day_mean_c": five, "risk": risk, "source": n.source,
                     "scout_from": scout if risk is BlastRisk.FAVOURABLE else None})
    return pd.DataFrame(rows)
