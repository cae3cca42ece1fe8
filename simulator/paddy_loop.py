"""A stepped, closed water loop of many paddies: gates in, levels out.

:class:`PaddyLoop` advances the water of N fields by ``step_min`` simulated
minutes at a time with the physics of :func:`agri.simulator.water.step`. The
supply inflow of each field comes from its supply gate's position (0..100 %:
a fully open gate passes ``INFLOW_MM_H``, the farmers' open inlet), limited by
its canal: fields are grouped on canals of ``CANAL_FIELDS`` fields along their
block, and a canal carries at most ``CANAL_CAPACITY_SHARE`` of what all its
gates pass fully open, shared among the open gates in proportion to what each
asks. A field with a drain gate lets its ponded water out through it (at most
``DRAIN_GATE_MM_H`` fully open), on top of the outlet weir.

Who moves the gates:

- ``farmers=True`` ("gates left alone"): the farmers of
  :class:`agri.simulator.water.Farmers` (look at ``CHECK_HOURS``, open the
  supply gate fully when under the day's low target, close it at the high
  target; the outlet weir on their plan) move them, exactly as in
  :func:`agri.simulator.water.simulate_water`, so the two runs compare.
- otherwise (``farmers`` False, or False for some fields) the caller sets
  :attr:`supply` and :attr:`drain` (positions, %) between steps, e.g. from
  what simulated gate devices did, and gives the outlet weirs (``crest_m``,
  fields x days: the farmer sets the boards to the top of the platform's
  band).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from agri.simulator.fields import Field
from agri.simulator.water import (
    CHECK_HOURS,
    INFLOW_MM_H,
    Farmers,
    PaddyState,
    WaterPlan,
    percolation_m_h,
    season_hours,
    shade_of,
    step,
)
from agri.simulator.weather import Weather

CANAL_FIELDS = 8  # assumption: fields fed by one canal branch
CANAL_CAPACITY_SHARE = 0.6  # assumption: a branch carries 60 % of all its gates fully open
DRAIN_GATE_MM_H = 10.0  # assumption: a fully open drain gate
DEFAULT_STEP_MIN = 15


class LoopError(ValueError):
    """The loop cannot be built or stepped as asked; the message says what to pass."""


def canals_of(fields: Sequence[Field], per_canal: int = CANAL_FIELDS) -> np.ndarray:
    """Canal number of each field: neighbours of a block, ``per_canal`` to a canal."""
    canal = np.empty(len(fields), dtype=int)
    by_block: dict[str, list[int]] = {}
    for i, f in enumerate(fields):
        by_block.setdefault(f.block.id, []).append(i)
    number = 0
    for members in by_block.values():
        for k in range(0, len(members), per_canal):
            canal[members[k:k + per_canal]] = number
            number += 1
    return canal


def canal_limited(supply_pct: np.ndarray, canal: np.ndarray, area_m2: np.ndarray,
                  capacity_share: float | None) -> np.ndarray:
    """Inflow (m/h over each field) of gates at ``supply_pct``, each canal's flow
    shared among its open gates when they ask more than it carries."""
    asked = np.clip(supply_pct, 0.0, 100.0) / 100.0 * INFLOW_MM_H / 1000.0  # m/h
    if capacity_share is None:
        return asked
    volume = asked * area_m2
    asked_by_canal = np.bincount(canal, weights=volume)
    full_by_canal = np.bincount(canal, weights=INFLOW_MM_H / 1000.0 * area_m2)
    capacity = capacity_share * full_by_canal
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(asked_by_canal > capacity, capacity / asked_by_canal, 1.0)
    return asked * scale[canal]


@dataclass
class PaddyLoop:
    """The water of ``plans``' fields, stepped ``step_min`` minutes at a time from
    the first hour of ``plans[0].days[start_day]``."""

    plans: Sequence[WaterPlan]
    weather: Weather
    step_min: int = DEFAULT_STEP_MIN
    farmers: bool | np.ndarray = True  # per field: the farmers move its gates
    canal: np.ndarray | None = None  # canal number per field; None: one canal per field
    area_m2: np.ndarray | None = None
    capacity_share: float | None = CANAL_CAPACITY_SHARE
    has_drain: np.ndarray | None = None
    crest_m: np.ndarray | None = None  # fields x days; None: the farmers' weirs
    canopy_cover: Sequence[pd.Series] | None = None
    start_day: int = 0
    state: PaddyState = field(init=False)
    supply: np.ndarray = field(init=False)
    drain: np.ndarray = field(init=False)
    steps: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not self.plans:
            raise LoopError("pass at least one plan")
        if self.step_min <= 0 or 60 % self.step_min:
            raise LoopError(f"step_min={self.step_min}: pass a divisor of 60 (10, 15, 20, 30, 60)")
        n = len(self.plans)
        days = self.plans[0].days
        if any(not p.days.equals(days) for p in self.plans):
            raise LoopError("plans must cover the same days; build them with plan_water")
        self.forcing = season_hours(self.weather, days)
        self._farmers = Farmers.of(self.plans)
        self._perc = percolation_m_h(self.plans)
        self._shade = shade_of(days, n, self.canopy_cover)
        self.canal = np.arange(n) if self.canal is None else np.asarray(self.canal)
        self.area_m2 = np.ones(n) if self.area_m2 is None else np.asarray(self.area_m2, float)
        self.has_drain = (np.zeros(n, dtype=bool) if self.has_drain is None
                          else np.asarray(self.has_drain, dtype=bool))
        if self.crest_m is not None and np.shape(self.crest_m) != (n, len(days)):
            raise LoopError(f"crest_m must be fields x days ({n} x {len(days)})")
        self.state = PaddyState.dry(n, self.forcing.air_c[self.start_day * 24])
        self.supply = np.zeros(n)
        self.drain = np.zeros(n)

    # -- time ---------------------------------------------------------------------------
    @property
    def per_hour(self) -> int:
        return 60 // self.step_min

    @property
    def hour_index(self) -> int:
        return self.start_day * 24 + self.steps // self.per_hour

    @property
    def now(self) -> pd.Timestamp:
        """The simulated time the loop's state is at."""
        return self.forcing.times[0] + pd.Timedelta(
            minutes=self.start_day * 24 * 60 + self.steps * self.step_min)

    @property
    def finished(self) -> bool:
        return self.hour_index >= len(self.forcing.times)

    @property
    def day_index(self) -> int:
        return self.hour_index // 24

    @property
    def level_m(self) -> np.ndarray:
        return self.state.level_m

    # -- one step -----------------------------------------------------------------------
    def advance(self) -> np.ndarray:
        """Step once; the levels (m) at the end of the step."""
        if self.finished:
            raise LoopError("the loop has reached the end of its days")
        k = self.hour_index
        d, hour = divmod(k, 24)
        managed = np.broadcast_to(np.asarray(self.farmers, dtype=bool), self.supply.shape)
        first_of_hour = self.steps % self.per_hour == 0
        inlet = self._farmers.inlet_open(self.state.level_m, d,
                                         check=first_of_hour and hour in CHECK_HOURS)
        self.supply = np.where(managed, np.where(inlet, 100.0, 0.0), self.supply)
        crest = self._farmers.crest(d)
        if self.crest_m is not None:
            crest = np.where(managed, crest, self.crest_m[:, d])
        inflow = canal_limited(self.supply, self.canal, self.area_m2, self.capacity_share)
        drain = np.where(self.has_drain, np.clip(self.drain, 0, 100) / 100.0, 0.0) * (
            DRAIN_GATE_MM_H / 1000.0)
        f = self.forcing
        self.state = step(self.state, dt_h=self.step_min / 60.0, air_c=f.air_c[k],
                          solar_w_m2=f.solar_w_m2[k], rain_m_h=f.rain_m_h[k], et_m_h=f.et_m_h[k],
                          channel_c=f.channel_c[d], shade=self._shade[:, d],
                          percolation_m_h=self._perc, inflow_m_h=inflow, crest_m=crest,
                          drain_m_h=drain)
        self.steps += 1
        return self.state.level_m

    def run_until(self, day_index: int) -> None:
        """Step until the first hour of ``day_index`` (the gates as they are)."""
        while self.day_index < day_index and not self.finished:
            self.advance()
