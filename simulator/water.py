"""Paddy water: daily management plans turned into an hourly water balance.

A :class:`WaterPlan` holds each day's management (dry, flooded to a target
depth, or drained) from the stage targets of analytics/agronomy.py section 7 and the
cold-water guidance of section 4. :func:`simulate_water` runs the hourly
balance of many plans at once (vectorised over fields) and returns water
level (m above the soil surface, negative when drained) and water
temperature (Cel), the two metrics of a paddy-water sensor.

Documented assumptions (not published for the Tsugaru plain):

- Storage: water above the surface counts one to one; below it the level
  moves through soil of drainable porosity ``SPECIFIC_YIELD``; a sensor
  reads no lower than ``MIN_LEVEL_M``.
- Percolation 10-20 mm/day per field while ponded, a third of it once
  drained; evapotranspiration by Makkink's radiation formula (1957) times a
  paddy crop coefficient.
- Farmers look at the paddy at ``CHECK_HOURS`` and open the inlet when the
  water is under the day's low target; the inlet (``INFLOW_MM_H``) closes as
  soon as the high target is reached. The outlet weir sits
  ``OUTLET_FREEBOARD_M`` above the high target; when draining it is opened.
- A cold forecast is the lower daily mean temperature of the day and the
  next (a perfect forecast), compared with the thresholds of
  ``agronomy.COLD_FORECAST_C`` and ``agronomy.SEVERE_COLD_FORECAST_C``.
- Water temperature relaxes towards air temperature plus solar heating of
  the unshaded water, with a time constant growing with depth; inflowing
  channel water has the week's mean air temperature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag
from agri.simulator.crop import daily_weather

if TYPE_CHECKING:
    from agri.simulator.fields import Field
    from agri.simulator.weather import Weather

DRY, FLOOD, DRAIN = 0, 1, 2  # daily management modes
SEASON_START = (5, 1)  # (month, day) of the hourly output's first day
SEASON_END = (10, 31)  # last day
PUDDLING_DAYS = 5  # flooded for puddling before transplanting
WATER_PUDDLING = ag.WaterDepth(0.03, 0.05, "assumption: puddling depth")
WATER_INTERMITTENT_LATE = ag.WaterDepth(0.03, 0.05, "assumption: flooded days after heading")
AFTER_TRANSPLANTING_DAYS = 7  # then tillering depth
COLD_DAY_TMEAN_C = 15.0  # "cold day" after transplanting (assumption)
MIDSEASON_DRAIN_DAYS = (7, 10)  # until small cracks (assumption on the duration)
FINAL_DRAIN_EXTRA_DAYS = (0, 10)  # final drainage 30 + this many days after heading
PERCOLATION_MM_DAY = (10.0, 20.0)
DRAINED_PERCOLATION_SHARE = 1.0 / 3.0
SPECIFIC_YIELD = 0.3
MIN_LEVEL_M = -0.10
LEVEE_M = 0.25  # water above spills over the levee
INFLOW_MM_H = 10.0  # about 8 L/s into a 30 a paddy
OUTLET_MM_H = 5.0  # most an open outlet passes
OUTLET_FREEBOARD_M = 0.02
CHECK_HOURS = (6, 17)
CROP_COEFFICIENT = 1.1  # paddy ET / Makkink reference ET (assumption)
MAKKINK_COEF = 0.7
LATENT_HEAT_J_KG = 2.45e6
PSYCHROMETRIC_KPA_C = 0.066
SOLAR_WARMING_C_PER_W_M2 = 0.010  # equilibrium excess of open water over air
DRAINED_WARMING_SHARE = 0.5  # a drained sensor sits in shaded soil
TAU_BASE_H = 2.0  # response time of a sensor in very shallow water, hours
TAU_PER_M_H = 60.0  # added response time per metre of water
CHANNEL_WATER_DAYS = 7  # channel water follows the mean air temperature of this many days


@dataclass(frozen=True, slots=True)
class WaterPlan:
    """A field's daily water management over ``days`` (local dates)."""

    field: str
    days: pd.DatetimeIndex
    mode: np.ndarray  # DRY, FLOOD or DRAIN per day
    low_m: np.ndarray  # on FLOOD days: irrigate when the level is under this (m) ...
    high_m: np.ndarray  # ... up to this (m)
    stage: np.ndarray  # label per day: "tillering", "midseason-drainage", "cold-deep", ...
    percolation_mm_day: float  # while ponded
    follows_advice: bool


@dataclass(frozen=True, slots=True)
class PaddyWater:
    """Hourly water level (m, surface = 0) and water temperature (Cel) of a field."""

    field: str
    times: pd.DatetimeIndex
    water_level_m: np.ndarray
    water_temp_c: np.ndarray
    plan: WaterPlan

    def daily(self) -> pd.DataFrame:
        """Daily means: ``level_m``, ``water_temp_c``; index = local dates."""
        days = len(self.times) // 24
        return pd.DataFrame({
            "level_m": self.water_level_m[:days * 24].reshape(days, 24).mean(axis=1),
            "water_temp_c": self.water_temp_c[:days * 24].reshape(days, 24).mean(axis=1),
        }, index=self.plan.days[:days])


def _season_days(year: int) -> pd.DatetimeIndex:
    return pd.date_range(date(year, *SEASON_START), date(year, *SEASON_END), freq="D")


def plan_water(*, field: Field, weather: Weather, heading: date,
               rng: np.random.Generator, daily: pd.DataFrame | None = None) -> WaterPlan:
    """Daily plan for ``field`` whose crop heads on ``heading`` (``daily``: the weather's
    :func:`~agri.simulator.crop.daily_weather`, computed when not given)."""
    days = _season_days(weather.year)
    air = (daily_weather(weather) if daily is None else daily).reindex(days)
    tmean = air["tmean"].to_numpy()
    forecast = np.minimum(tmean, np.append(tmean[1:], tmean[-1]))
    n = len(days)
    mode = np.full(n, DRY)
    low = np.zeros(n)
    high = np.zeros(n)
    stage = np.full(n, "dry", dtype=object)

    def index(day: date) -> int:
        return int(np.clip((day - days[0].date()).days, 0, n))

    def flood(start: int, end: int, depth: ag.WaterDepth, label: str) -> None:
        mode[start:end], low[start:end], high[start:end] = FLOOD, depth.low_m, depth.high_m
        stage[start:end] = label

    def intermittent(start: int, end: int, depth: ag.WaterDepth) -> None:
        day = start - int(rng.integers(0, ag.INTERMITTENT_FLOODED_DAYS))
        while day < end:
            wet_end = day + ag.INTERMITTENT_FLOODED_DAYS
            flood(max(day, start), min(wet_end, end), depth, "intermittent")
            dry_end = wet_end + int(rng.integers(ag.INTERMITTENT_DRAINED_DAYS[0],
                                                 ag.INTERMITTENT_DRAINED_DAYS[1] + 1))
            mode[max(wet_end, start):min(dry_end, end)] = DRAIN
            stage[max(wet_end, start):min(dry_end, end)] = "intermittent"
            day = dry_end

    planted = index(field.transplanted_on)
    flood(max(planted - PUDDLING_DAYS, 0), planted, WATER_PUDDLING, "puddling")
    for i in range(planted, min(planted + AFTER_TRANSPLANTING_DAYS, n)):
        cold = tmean[i] < COLD_DAY_TMEAN_C
        flood(i, i + 1, ag.WATER_AFTER_TRANSPLANTING_COLD if cold
              else ag.WATER_AFTER_TRANSPLANTING_SUNNY, "rooting")
    drain_start = index(heading - timedelta(days=int(rng.integers(
        ag.MIDSEASON_DRAIN_DAYS_BEFORE_HEADING[0], ag.MIDSEASON_DRAIN_DAYS_BEFORE_HEADING[1] + 1))))
    flood(planted + AFTER_TRANSPLANTING_DAYS, drain_start, ag.WATER_TILLERING, "tillering")
    drain_end = drain_start + int(rng.integers(MIDSEASON_DRAIN_DAYS[0],
                                               MIDSEASON_DRAIN_DAYS[1] + 1))
    mode[drain_start:drain_end], stage[drain_start:drain_end] = DRAIN, "midseason-drainage"
    headed = index(heading)
    panicle = index(heading - timedelta(days=ag.PRECONDITIONING_DAYS_BEFORE_HEADING))
    meiosis = index(heading - timedelta(days=ag.MEIOSIS_DAYS_BEFORE_HEADING[0]))
    intermittent(drain_end, headed, ag.WATER_PANICLE_INITIATION)
    if field.follows_advice:
        flood(meiosis, headed, ag.WATER_MEIOSIS, "meiosis-deep")
        for i in range(max(panicle, drain_end), headed):
            if forecast[i] <= ag.SEVERE_COLD_FORECAST_C:
                flood(i, i + 1, ag.WATER_SEVERE_COLD_FORECAST, "cold-deep")
            elif forecast[i] <= ag.COLD_FORECAST_C and i < meiosis:
                flood(i, i + 1, ag.WATER_COLD_FORECAST, "cold-deep")
    after = index(heading + timedelta(days=ag.AFTER_HEADING_DEEP_DAYS))
    flood(headed, after, ag.WATER_AFTER_HEADING, "after-heading")
    final = index(heading + timedelta(days=ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING + int(
        rng.integers(FINAL_DRAIN_EXTRA_DAYS[0], FINAL_DRAIN_EXTRA_DAYS[1] + 1))))
    intermittent(after, final, WATER_INTERMITTENT_LATE)
    mode[final:], stage[final:] = DRAIN, "final-drainage"
    return WaterPlan(field=field.id, days=days, mode=mode, low_m=low, high_m=high, stage=stage,
                     percolation_mm_day=float(rng.uniform(*PERCOLATION_MM_DAY)),
                     follows_advice=field.follows_advice)


def reference_et_mm_h(air_temp_c: np.ndarray, solar_w_m2: np.ndarray) -> np.ndarray:
    """Makkink reference evapotranspiration, mm per hour."""
    t = np.asarray(air_temp_c, dtype=float)
    es = 0.6108 * np.exp(17.27 * t / (t + 237.3))
    slope = 4098.0 * es / (t + 237.3) ** 2
    return (MAKKINK_COEF * slope / (slope + PSYCHROMETRIC_KPA_C)
            * np.maximum(solar_w_m2, 0.0) * 3600.0 / LATENT_HEAT_J_KG)


def simulate_water(plans: Sequence[WaterPlan], weather: Weather, *,
                   canopy_cover: Sequence[pd.Series] | None = None) -> list[PaddyWater]:
    """Hourly water level and temperature of each plan's field over the plans' days.

    ``canopy_cover`` (0..1 per day, one series per plan) shades the water;
    days without a value count as bare.
    """
    if not plans:
        return []
    days = plans[0].days
    if any(not p.days.equals(days) for p in plans):
        raise ValueError("plans must cover the same days; build them with plan_water")
    first = (days[0].date() - date(weather.year, 1, 1)).days * 24
    hours = len(days) * 24
    window = slice(first, first + hours)
    air = np.asarray(weather.air_temp[window], dtype=float)
    solar = np.asarray(weather.solar_radiation[window], dtype=float)
    rain_m = np.asarray(weather.precipitation[window], dtype=float) / 1000.0
    et_m = CROP_COEFFICIENT * reference_et_mm_h(air, solar) / 1000.0
    daily_air = pd.Series(air.reshape(-1, 24).mean(axis=1), index=days)
    channel = daily_air.rolling(CHANNEL_WATER_DAYS, min_periods=1).mean().to_numpy()
    mode = np.stack([p.mode for p in plans])
    low = np.stack([p.low_m for p in plans])
    high = np.stack([p.high_m for p in plans])
    perc = np.array([p.percolation_mm_day for p in plans]) / 24_000.0
    shade = np.zeros((len(plans), len(days)))
    for i, cover in enumerate(canopy_cover or []):
        shade[i] = cover.reindex(days).fillna(0.0).clip(0.0, 1.0).to_numpy()

    storage = np.full(len(plans), MIN_LEVEL_M * SPECIFIC_YIELD)
    temp = np.full(len(plans), air[0])
    inlet = np.zeros(len(plans), dtype=bool)
    level_out = np.empty((len(plans), hours))
    temp_out = np.empty((len(plans), hours))
    for k in range(hours):
        d, hour = divmod(k, 24)
        flooded = mode[:, d] == FLOOD
        level = np.where(storage > 0, storage, storage / SPECIFIC_YIELD)
        if hour in CHECK_HOURS:
            inlet |= flooded & (level < low[:, d])
        inlet &= flooded & (level < high[:, d])
        inflow = np.where(inlet, INFLOW_MM_H / 1000.0, 0.0)
        loss = np.where(storage > 0, perc, perc * DRAINED_PERCOLATION_SHARE) + et_m[k]
        ponded_before = np.maximum(storage, 0.0)
        storage = storage + rain_m[k] + inflow - loss
        crest = np.where(flooded, high[:, d] + OUTLET_FREEBOARD_M, 0.0)
        spill = np.minimum(np.maximum(storage - crest, 0.0), OUTLET_MM_H / 1000.0)
        storage = np.clip(storage - spill, MIN_LEVEL_M * SPECIFIC_YIELD, LEVEE_M)
        level = np.where(storage > 0, storage, storage / SPECIFIC_YIELD)
        depth = np.maximum(level, 0.0)
        warming = SOLAR_WARMING_C_PER_W_M2 * solar[k] * (1.0 - shade[:, d])
        target = air[k] + np.where(depth > 0, warming, DRAINED_WARMING_SHARE * warming)
        tau = TAU_BASE_H + TAU_PER_M_H * depth
        temp = temp + (target - temp) * (1.0 - np.exp(-1.0 / tau))
        mixing = inflow / np.maximum(ponded_before + inflow, 1e-3)
        temp = np.where(inflow > 0, temp + (channel[d] - temp) * mixing, temp)
        level_out[:, k] = level
        temp_out[:, k] = temp
    times = weather.times()[window]
    return [PaddyWater(field=p.field, times=times, water_level_m=level_out[i],
                       water_temp_c=temp_out[i], plan=p) for i, p in enumerate(plans)]


def cold_spell_days(plan: WaterPlan) -> pd.DatetimeIndex:
    """Days on which ``plan`` called for deep water against cold."""
    return plan.days[plan.stage == "cold-deep"]

