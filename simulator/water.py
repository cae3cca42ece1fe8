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


@dataclass(slots=True)
class PaddyState:
    """The water of many fields at one moment: ``storage`` (m of water per field: above
    the surface one to one, below it through ``SPECIFIC_YIELD``) and water
    temperature (Cel)."""

    storage: np.ndarray
    temp_c: np.ndarray

    @classmethod
    def dry(cls, fields: int, air_c: float) -> PaddyState:
        """Drained fields at the lowest level a sensor reads, water at the air's temperature."""
        return cls(np.full(fields, MIN_LEVEL_M * SPECIFIC_YIELD), np.full(fields, float(air_c)))

    @property
    def level_m(self) -> np.ndarray:
        return level_of(self.storage)

    @property
    def ponded_m(self) -> np.ndarray:
        return np.maximum(self.storage, 0.0)


def level_of(storage: np.ndarray) -> np.ndarray:
    """Water level (m, surface 0) of a storage."""
    return np.where(storage > 0, storage, storage / SPECIFIC_YIELD)


@dataclass(frozen=True, slots=True)
class SeasonHours:
    """The hourly forcing of a water season (``days`` local dates, 24 values a day):
    air temperature, solar radiation, rain (m/h), paddy ET (m/h), and channel water
    temperature per day."""

    days: pd.DatetimeIndex
    times: pd.DatetimeIndex
    air_c: np.ndarray
    solar_w_m2: np.ndarray
    rain_m_h: np.ndarray
    et_m_h: np.ndarray
    channel_c: np.ndarray  # per day


def season_hours(weather: Weather, days: pd.DatetimeIndex) -> SeasonHours:
    """The weather of ``days`` as the water balance uses it."""
    first = (days[0].date() - date(weather.year, 1, 1)).days * 24
    window = slice(first, first + len(days) * 24)
    air = np.asarray(weather.air_temp[window], dtype=float)
    solar = np.asarray(weather.solar_radiation[window], dtype=float)
    rain_m = np.asarray(weather.precipitation[window], dtype=float) / 1000.0
    et_m = CROP_COEFFICIENT * reference_et_mm_h(air, solar) / 1000.0
    daily_air = pd.Series(air.reshape(-1, 24).mean(axis=1), index=days)
    channel = daily_air.rolling(CHANNEL_WATER_DAYS, min_periods=1).mean().to_numpy()
    return SeasonHours(days, weather.times()[window], air, solar, rain_m, et_m, channel)


def step(state: PaddyState, *, dt_h: float, air_c: float, solar_w_m2: float, rain_m_h: float,
         et_m_h: float, channel_c: float, shade: np.ndarray, percolation_m_h: np.ndarray,
         inflow_m_h: np.ndarray, crest_m: np.ndarray, drain_m_h: np.ndarray | float = 0.0
         ) -> PaddyState:
    """The water of every field ``dt_h`` hours later: the one place of the physics.

    Rain, inflow (``inflow_m_h``: depth per hour over the field), percolation (a
    third once drained) and ET change the storage; water above the outlet weir's
    ``crest_m`` spills (at most ``OUTLET_MM_H``); a drain gate passes at most
    ``drain_m_h`` of the ponded water; the levee caps the storage and a sensor reads no
    lower than ``MIN_LEVEL_M``. The water temperature relaxes towards air plus solar
    heating of the unshaded water, and inflowing channel water mixes in.
    """
    storage = state.storage
    inflow = inflow_m_h * dt_h
    loss = (np.where(storage > 0, percolation_m_h, percolation_m_h * DRAINED_PERCOLATION_SHARE)
            + et_m_h) * dt_h
    ponded_before = np.maximum(storage, 0.0)
    storage = storage + rain_m_h * dt_h + inflow - loss
    spill = np.minimum(np.maximum(storage - crest_m, 0.0), OUTLET_MM_H / 1000.0 * dt_h)
    storage = storage - spill
    drained = np.minimum(np.maximum(storage, 0.0), np.asarray(drain_m_h) * dt_h)
    storage = np.clip(storage - drained, MIN_LEVEL_M * SPECIFIC_YIELD, LEVEE_M)
    depth = np.maximum(level_of(storage), 0.0)
    warming = SOLAR_WARMING_C_PER_W_M2 * solar_w_m2 * (1.0 - shade)
    target = air_c + np.where(depth > 0, warming, DRAINED_WARMING_SHARE * warming)
    tau = TAU_BASE_H + TAU_PER_M_H * depth
    temp = state.temp_c + (target - state.temp_c) * (1.0 - np.exp(-dt_h / tau))
    mixing = inflow / np.maximum(ponded_before + inflow, 1e-3)
    temp = np.where(inflow > 0, temp + (channel_c - temp) * mixing, temp)
    return PaddyState(storage, temp)


def shade_of(days: pd.DatetimeIndex, fields: int,
             canopy_cover: Sequence[pd.Series] | None) -> np.ndarray:
    """Canopy shade (0..1), fields x days; days without a value count as bare."""
    shade = np.zeros((fields, len(days)))
    for i, cover in enumerate(canopy_cover or []):
        shade[i] = cover.reindex(days).fillna(0.0).clip(0.0, 1.0).to_numpy()
    return shade


@dataclass(slots=True)
class Farmers:
    """The farmers' inlet management of many plans: at ``CHECK_HOURS`` each opens the
    inlet when the water is under the day's low target; it closes as soon as the high
    target is reached. The outlet weir sits ``OUTLET_FREEBOARD_M`` above the high target
    on flooded days and is open on the others."""

    mode: np.ndarray  # fields x days
    low: np.ndarray
    high: np.ndarray
    inlet: np.ndarray

    @classmethod
    def of(cls, plans: Sequence[WaterPlan]) -> Farmers:
        return cls(np.stack([p.mode for p in plans]), np.stack([p.low_m for p in plans]),
                   np.stack([p.high_m for p in plans]), np.zeros(len(plans), dtype=bool))

    def inlet_open(self, level: np.ndarray, day: int, *, check: bool) -> np.ndarray:
        """Whose inlet is open now (``check``: the farmers look at their paddies)."""
        flooded = self.mode[:, day] == FLOOD
        if check:
            self.inlet |= flooded & (level < self.low[:, day])
        self.inlet &= flooded & (level < self.high[:, day])
        return self.inlet.copy()

    def crest(self, day: int) -> np.ndarray:
        """Height of each outlet weir (m above the surface)."""
        return np.where(self.mode[:, day] == FLOOD, self.high[:, day] + OUTLET_FREEBOARD_M, 0.0)


def percolation_m_h(plans: Sequence[WaterPlan]) -> np.ndarray:
    return np.array([p.percolation_mm_day for p in plans]) / 24_000.0


def simulate_water(plans: Sequence[WaterPlan], weather: Weather, *,
                   canopy_cover: Sequence[pd.Series] | None = None) -> list[PaddyWater]:
    """Hourly water level and temperature of each plan's field over the plans' days,
    managed by their farmers (:class:`Farmers`).

    ``canopy_cover`` (0..1 per day, one series per plan) shades the water;
    days without a value count as bare.
    """
    if not plans:
        return []
    days = plans[0].days
    if any(not p.days.equals(days) for p in plans):
        raise ValueError("plans must cover the same days; build them with plan_water")
    forcing = season_hours(weather, days)
    hours = len(days) * 24
    farmers = Farmers.of(plans)
    perc = percolation_m_h(plans)
    shade = shade_of(days, len(plans), canopy_cover)
    state = PaddyState.dry(len(plans), forcing.air_c[0])
    level_out = np.empty((len(plans), hours))
    temp_out = np.empty((len(plans), hours))
    for k in range(hours):
        d, hour = divmod(k, 24)
        inlet = farmers.inlet_open(state.level_m, d, check=hour in CHECK_HOURS)
        state = step(state, dt_h=1.0, air_c=forcing.air_c[k], solar_w_m2=forcing.solar_w_m2[k],
                     rain_m_h=forcing.rain_m_h[k], et_m_h=forcing.et_m_h[k],
                     channel_c=forcing.channel_c[d], shade=shade[:, d], percolation_m_h=perc,
                     inflow_m_h=np.where(inlet, INFLOW_MM_H / 1000.0, 0.0),
                     crest_m=farmers.crest(d))
        level_out[:, k] = state.level_m
        temp_out[:, k] = state.temp_c
    return [PaddyWater(field=p.field, times=forcing.times, water_level_m=level_out[i],
                       water_temp_c=temp_out[i], plan=p) for i, p in enumerate(plans)]


def cold_spell_days(plan: WaterPlan) -> pd.DatetimeIndex:
    """Days on which ``plan`` called for deep water against cold."""
    return plan.days[plan.stage == "cold-deep"]

