"""Paddy water: each day's target depth band for the crop's stage, and the
measured level against it.

:func:`daily_band` places the stages of :mod:`agri.analytics.agronomy`
section 7 (and the cold-water guidance of section 4) on the calendar from
the transplanting date and the heading date (expected or observed: the band
moves when the estimate moves). Offsets are counted in days from heading,
``d = day - heading`` (T is the transplanting day); for a season
transplanted on 20 May that heads on 5 Aug:

- after-transplanting, T .. T+6 (20-26 May): WATER_AFTER_TRANSPLANTING_SUNNY,
  or WATER_AFTER_TRANSPLANTING_COLD on a cold day;
- tillering, T+7 .. d=-41 (27 May - 25 Jun): WATER_TILLERING;
- midseason-drainage, d=-40 .. -35 (26 Jun - 1 Jul): drained,
  MIDSEASON_DRAIN_DAYS_BEFORE_HEADING;
- intermittent, d=-34 .. -26 (2-10 Jul): INTERMITTENT_FLOODED_DAYS /
  INTERMITTENT_DRAINED_DAYS, flooded to WATER_PANICLE_INITIATION's high;
- preconditioning (or panicle-initiation), d=-25 .. -17 (11-19 Jul):
  WATER_PRECONDITIONING from PRECONDITIONING_DAYS_BEFORE_HEADING (or
  WATER_PANICLE_INITIATION);
- meiosis, d=-16 .. -7 (20-29 Jul): WATER_MEIOSIS, MEIOSIS_DAYS_BEFORE_HEADING;
- before-heading, d=-6 .. -1 (30 Jul - 4 Aug): WATER_MEIOSIS kept to heading;
- after-heading, d=0 .. 9 (5-14 Aug): WATER_AFTER_HEADING, AFTER_HEADING_DEEP_DAYS;
- intermittent-ripening, d=10 .. 29 (15 Aug - 3 Sep): intermittent, flooded to
  WATER_AFTER_HEADING's high;
- final-drainage, d>=30 (4 Sep on): drained, FINAL_DRAIN_MIN_DAYS_AFTER_HEADING.

Cold protection overrides the band from d=-25 to d=-1 (preconditioning to
heading, which holds the whole meiosis period): WATER_COLD_FORECAST when the
expected daily mean of the day or of the next day is <= COLD_FORECAST_C,
WATER_SEVERE_COLD_FORECAST when it is <= SEVERE_COLD_FORECAST_C.

Readings of the constants (not published as such; the assumptions below):

- "Start 35-40 days before heading" is read as drained on the days from 40
  to 35 days before heading (six days: mid-season drainage lasts about a
  week, until small cracks). Intermittent irrigation follows until the
  preconditioning or panicle-initiation period starts 25 days before heading.
- A drained band has no lower limit a sensor could see (``DRAINED_LOW_M``)
  and no ponded water (high 0).
- Intermittent irrigation (2 days flooded, 2-3 drained) cannot be one daily
  band; its band admits both states: from ``INTERMITTENT_LOW_M`` below the
  surface up to the flooded depth. The cycle itself is the gate's business.
- Panicle initiation is taken as 25 days before heading (the day from which
  the Yamagata preconditioning counts). With ``preconditioning`` (the
  default: Tsugaru is a yamase region) the days to meiosis keep about 10 cm
  (WATER_PRECONDITIONING); without it they keep Iwate's 4-6 cm at panicle
  initiation (WATER_PANICLE_INITIATION), raised to 10 cm by meiosis.
- The meiosis depth is kept from the end of meiosis to heading (the guidance
  gives no other depth for those days).
- Final drainage from ``final_drain_after_days`` after heading (default and
  minimum FINAL_DRAIN_MIN_DAYS_AFTER_HEADING); a caller delaying it in a
  hot year passes a larger number.
- Water rises in hours, not at once: a cold day's deep water starts the day
  before (``COLD_PREPARE_DAYS``), as the simulator's farmers read a forecast.
- The Aomori "cold day" after transplanting is a day whose mean is below
  ``TRANSPLANTING_COLD_DAY_C``. WATER_ROOTING_DAY / _NIGHT (Tohoku) cover the
  same week as Aomori's after-transplanting depths; the local ones are used.

:func:`compare` sets a level series (metres, soil surface 0) against a band,
hour by hour in Asia/Tokyo days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag
from agri.clock import TZ

ROOTING_DAYS = 7  # assumption: rooting (katsuchaku) takes about a week after transplanting
TRANSPLANTING_COLD_DAY_C = 15.0  # assumption: a "cold day" after transplanting (daily mean)
DRAINED_LOW_M = -1.0  # assumption: a drained paddy has no lower limit within a sensor's reach
INTERMITTENT_LOW_M = -0.10  # assumption: drained days of intermittent irrigation, lowest level
COLD_PREPARE_DAYS = 1  # assumption: deep water from the day before a cold day
# Assumption: a level within 1 cm of the band counts as inside: the bands are whole
# centimetres, and neither an inlet nor a commercial level sensor is finer.
LEVEL_TOLERANCE_M = 0.01
# Assumption: a reading stands for at most two of the slowest sensor intervals; an hour
# without a reading that recent is "no data".
STALE_AFTER_S = 2 * ag.SENSOR_INTERVAL_S[1]


class WaterBandError(ValueError):
    """The input cannot give a band or a comparison; the message says what to pass."""


class Phase(StrEnum):
    AFTER_TRANSPLANTING = "after-transplanting"
    TILLERING = "tillering"
    MIDSEASON_DRAINAGE = "midseason-drainage"
    INTERMITTENT = "intermittent"
    PANICLE_INITIATION = "panicle-initiation"
    PRECONDITIONING = "preconditioning"
    MEIOSIS = "meiosis"
    BEFORE_HEADING = "before-heading"
    COLD_PROTECTION = "cold-protection"
    AFTER_HEADING = "after-heading"
    INTERMITTENT_RIPENING = "intermittent-ripening"
    FINAL_DRAINAGE = "final-drainage"


DRAINED_PHASES = frozenset({Phase.MIDSEASON_DRAINAGE, Phase.FINAL_DRAINAGE})
DEEP_WATER_PHASES = frozenset({Phase.PRECONDITIONING, Phase.MEIOSIS, Phase.BEFORE_HEADING,
                               Phase.COLD_PROTECTION})


@dataclass(frozen=True, slots=True)
class BandDay:
    """Target water level on a local calendar day: from ``low_m`` to ``high_m``
    (metres above the soil surface, negative below it), the stage it belongs
    to, and where the numbers come from."""

    day: date
    low_m: float
    high_m: float
    phase: Phase
    source: str


class LevelState(StrEnum):
    INSIDE = "inside"
    BELOW = "below"
    ABOVE = "above"
    NO_DATA = "no data"
    NO_TARGET = "no target"  # the day has no band (before transplanting, after the band)


@dataclass(frozen=True, slots=True)
class DayStatus:
    """Hours of a local day (those ended by ``as_of``) inside, below and above
    the day's band, and without a recent reading."""

    day: date
    low_m: float
    high_m: float
    phase: Phase
    hours_inside: int
    hours_below: int
    hours_above: int
    hours_no_data: int

    @property
    def hours(self) -> int:
        return self.hours_inside + self.hours_below + self.hours_above + self.hours_no_data

    @property
    def share_inside(self) -> float | None:
        """Share of the day's elapsed hours inside the band (no data is not inside)."""
        return self.hours_inside / self.hours if self.hours else None


@dataclass(frozen=True, slots=True)
class WaterStatus:
    """The level against the band as of ``as_of``.

    ``state`` is the latest reading's against its day's band, or no data when
    that reading is older than ``STALE_AFTER_S``. ``off_target_since`` is the
    first reading of the unbroken run of off-target readings that ends with
    the latest one (a gap longer than ``STALE_AFTER_S`` breaks the run: what
    the sensor did not see is not claimed); ``off_target_hours`` runs from
    then to ``as_of`` (0 when the state is not below or above).
    """

    as_of: datetime
    state: LevelState
    target: BandDay | None
    latest_level_m: float | None
    latest_at: datetime | None
    off_target_since: datetime | None
    off_target_hours: float
    days: tuple[DayStatus, ...]

    @property
    def share_inside(self) -> float | None:
        """Share of all elapsed hours of the band's days inside the band."""
        hours = sum(d.hours for d in self.days)
        return sum(d.hours_inside for d in self.days) / hours if hours else None


def _day_list(days: Iterable[date] | tuple[date, date]) -> list[date]:
    if isinstance(days, tuple) and len(days) == 2 and all(isinstance(d, date) for d in days):
        start, end = days
        if end < start:
            raise WaterBandError(f"days ({start}, {end}) ends before it starts; pass (start, end)")
        return [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return sorted(set(days))


def _colder_of(cold_days: Mapping[date, float], day: date) -> float:
    """Lowest expected daily mean of ``day`` and the ``COLD_PREPARE_DAYS`` after it."""
    values = [cold_days.get(day + timedelta(days=i)) for i in range(COLD_PREPARE_DAYS + 1)]
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return min(values) if values else math.inf


def _band(day: date, depth: ag.WaterDepth, phase: Phase, note: str = "") -> BandDay:
    return BandDay(day, depth.low_m, depth.high_m, phase,
                   f"{depth.source}; {note}" if note else depth.source)


def _band_of(day: date, *, transplanted_on: date, heading: date, tmean: float,
             final_drain_after_days: int, preconditioning: bool) -> BandDay:
    d = (day - heading).days
    drain_first, drain_last = (-ag.MIDSEASON_DRAIN_DAYS_BEFORE_HEADING[1],
                               -ag.MIDSEASON_DRAIN_DAYS_BEFORE_HEADING[0])
    preconditioning_first = -ag.PRECONDITIONING_DAYS_BEFORE_HEADING
    meiosis_first, meiosis_last = (-ag.MEIOSIS_DAYS_BEFORE_HEADING[0],
                                   -ag.MEIOSIS_DAYS_BEFORE_HEADING[1])
    if d >= final_drain_after_days:
        return BandDay(day, DRAINED_LOW_M, 0.0, Phase.FINAL_DRAINAGE,
                       f"final drainage no earlier than {ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING} "
                       f"days after heading (Aomori); from day {final_drain_after_days}")
    if d >= ag.AFTER_HEADING_DEEP_DAYS:
        return BandDay(day, INTERMITTENT_LOW_M, ag.WATER_AFTER_HEADING.high_m,
                       Phase.INTERMITTENT_RIPENING,
                       "intermittent irrigation after the first 10 days after heading "
                       "(agrin.jp nakaboshi cycle; flooded depth as after heading)")
    if d >= 0:
        return _band(day, ag.WATER_AFTER_HEADING, Phase.AFTER_HEADING)
    if d >= preconditioning_first:
        if tmean <= ag.SEVERE_COLD_FORECAST_C:
            return _band(day, ag.WATER_SEVERE_COLD_FORECAST, Phase.COLD_PROTECTION,
                         f"expected mean {tmean:.1f} C <= {ag.SEVERE_COLD_FORECAST_C} C")
        if tmean <= ag.COLD_FORECAST_C:
            return _band(day, ag.WATER_COLD_FORECAST, Phase.COLD_PROTECTION,
                         f"expected mean {tmean:.1f} C <= {ag.COLD_FORECAST_C} C")
        if d > meiosis_last:
            return _band(day, ag.WATER_MEIOSIS, Phase.BEFORE_HEADING,
                         "meiosis depth kept to heading (assumption)")
        if d >= meiosis_first:
            return _band(day, ag.WATER_MEIOSIS, Phase.MEIOSIS)
        if preconditioning:
            return _band(day, ag.WATER_PRECONDITIONING, Phase.PRECONDITIONING)
        return _band(day, ag.WATER_PANICLE_INITIATION, Phase.PANICLE_INITIATION)
    if d > drain_last:
        return BandDay(day, INTERMITTENT_LOW_M, ag.WATER_PANICLE_INITIATION.high_m,
                       Phase.INTERMITTENT,
                       f"intermittent irrigation {ag.INTERMITTENT_FLOODED_DAYS} days flooded / "
                       f"{ag.INTERMITTENT_DRAINED_DAYS[0]}-{ag.INTERMITTENT_DRAINED_DAYS[1]} "
                       "drained (agrin.jp nakaboshi); flooded depth as at panicle initiation")
    if d >= drain_first:
        return BandDay(day, DRAINED_LOW_M, 0.0, Phase.MIDSEASON_DRAINAGE,
                       "mid-season drainage 35-40 days before heading (agrin.jp nakaboshi)")
    if (day - transplanted_on).days < ROOTING_DAYS:
        if tmean < TRANSPLANTING_COLD_DAY_C:
            return _band(day, ag.WATER_AFTER_TRANSPLANTING_COLD, Phase.AFTER_TRANSPLANTING,
                         f"cold day, expected mean {tmean:.1f} C")
        return _band(day, ag.WATER_AFTER_TRANSPLANTING_SUNNY, Phase.AFTER_TRANSPLANTING)
    return _band(day, ag.WATER_TILLERING, Phase.TILLERING)


def daily_band(*, transplanted_on: date, heading: date,
               days: Iterable[date] | tuple[date, date],
               cold_days: Mapping[date, float] | None = None,
               final_drain_after_days: int = ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING,
               preconditioning: bool = True) -> list[BandDay]:
    """The target band of each of ``days`` (local dates; a ``(start, end)``
    tuple means every day from start to end inclusive), in date order.

    ``heading`` is the heading date the band is built around (expected or
    observed). ``cold_days`` maps dates to the expected daily mean
    temperature (Cel, observed or forecast); it moves the band on cold days
    after transplanting and in the cold-protection period. Days before
    transplanting have no band and are left out.
    """
    if heading <= transplanted_on:
        raise WaterBandError(f"heading {heading} is not after transplanting {transplanted_on}; "
                             "pass the season's expected or observed heading date")
    if final_drain_after_days < ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING:
        raise WaterBandError(
            f"final_drain_after_days={final_drain_after_days} drains too early; pass at least "
            f"{ag.FINAL_DRAIN_MIN_DAYS_AFTER_HEADING}")
    temps = cold_days or {}
    return [_band_of(day, transplanted_on=transplanted_on, heading=heading,
                     tmean=_colder_of(temps, day), final_drain_after_days=final_drain_after_days,
                     preconditioning=preconditioning)
            for day in _day_list(days) if day >= transplanted_on]


def phase_days(band: Sequence[BandDay], phase: Phase) -> tuple[date, date] | None:
    """First and last day of ``phase`` in ``band``, or None when it has none."""
    days = [b.day for b in band if b.phase == phase]
    return (min(days), max(days)) if days else None


# --- The measured level against the band ---------------------------------------------


def _state(level: float, low: float, high: float, tolerance: float) -> LevelState:
    if level < low - tolerance:
        return LevelState.BELOW
    if level > high + tolerance:
        return LevelState.ABOVE
    return LevelState.INSIDE


def _readings(level: pd.Series, as_of: datetime) -> pd.Series:
    if not isinstance(level.index, pd.DatetimeIndex) or level.index.tz is None:
        raise WaterBandError("pass the level as a Series indexed by time-zone-aware timestamps "
                             "(metres, soil surface 0)")
    values = pd.Series(pd.to_numeric(level, errors="coerce").to_numpy(dtype=float),
                       index=level.index.tz_convert(TZ).as_unit("ns"))
    values = values[np.isfinite(values.to_numpy())]  # unreadable values are no reading
    values = values[values.index <= pd.Timestamp(as_of)]
    return values.groupby(level=0).mean().sort_index()


_NS = 1_000_000_000
_HOUR_NS = 3600 * _NS
# State codes of the hourly arrays; NOT_ELAPSED marks hours after as_of.
_INSIDE, _BELOW, _ABOVE, _NO_DATA, _NOT_ELAPSED = range(5)


def _day_statuses(band: list[BandDay], readings: pd.Series, as_of: pd.Timestamp,
                  tolerance: float) -> tuple[DayStatus, ...]:
    band = [b for b in band if pd.Timestamp(b.day, tz=TZ) < as_of]
    if not band:
        return ()
    starts = pd.DatetimeIndex([pd.Timestamp(b.day, tz=TZ) for b in band]).as_unit("ns").asi8
    hours_ns = (starts[:, None] + np.arange(24) * _HOUR_NS).ravel()
    ends = hours_ns + _HOUR_NS
    value = np.full(len(hours_ns), np.nan)
    if len(readings):
        hourly = readings.resample("1h").mean()
        value = hourly.reindex(pd.DatetimeIndex(hours_ns, tz="UTC").tz_convert(TZ)).to_numpy(
            dtype=float, copy=True)
        times, values = readings.index.asi8, readings.to_numpy()
        last = np.searchsorted(times, ends, side="left") - 1
        recent = (last >= 0) & (ends - times[np.maximum(last, 0)] <= STALE_AFTER_S * _NS)
        carry = np.isnan(value) & recent
        value[carry] = values[last[carry]]
    low = np.repeat([b.low_m for b in band], 24) - tolerance
    high = np.repeat([b.high_m for b in band], 24) + tolerance
    with np.errstate(invalid="ignore"):
        code = np.select([np.isnan(value), value < low, value > high],
                         [_NO_DATA, _BELOW, _ABOVE], _INSIDE)
    code[ends > as_of.value] = _NOT_ELAPSED
    per_day = code.reshape(len(band), 24)
    counts = [(per_day == c).sum(axis=1) for c in (_INSIDE, _BELOW, _ABOVE, _NO_DATA)]
    return tuple(DayStatus(b.day, b.low_m, b.high_m, b.phase, int(counts[0][i]),
                           int(counts[1][i]), int(counts[2][i]), int(counts[3][i]))
                 for i, b in enumerate(band))


def compare(band: Sequence[BandDay], level: pd.Series, *, as_of: datetime,
            tolerance_m: float = LEVEL_TOLERANCE_M) -> WaterStatus:
    """``level`` (metres, tz-aware timestamps; readings after ``as_of`` are
    ignored) against ``band``.

    Each hour of a band day that has ended by ``as_of`` takes the mean of its
    readings, or else the latest earlier reading if that is at most
    ``STALE_AFTER_S`` old at the hour's end; otherwise it has no data. The
    hour's state is that value against the day's band widened by
    ``tolerance_m`` on both sides.
    """
    if as_of.tzinfo is None:
        raise WaterBandError("pass as_of as a time-zone-aware datetime")
    as_of_ts = pd.Timestamp(as_of).tz_convert(TZ).as_unit("ns")
    by_day = {b.day: b for b in band}
    readings = _readings(level, as_of)
    times = readings.index.asi8  # ns since the epoch
    values = readings.to_numpy()
    stale_ns = STALE_AFTER_S * _NS

    day_status = _day_statuses(sorted(band, key=lambda b: b.day), readings, as_of_ts,
                               tolerance_m)
    target = by_day.get(as_of_ts.date())
    if not len(readings):
        state = LevelState.NO_TARGET if target is None else LevelState.NO_DATA
        return WaterStatus(as_of, state, target, None, None, None, 0.0, tuple(day_status))
    latest_at = readings.index[-1].to_pydatetime()
    latest = float(values[-1])
    since = None
    if target is None:
        state = LevelState.NO_TARGET
    elif as_of_ts.value - times[-1] > stale_ns:
        state = LevelState.NO_DATA
    else:
        state = _state(latest, target.low_m, target.high_m, tolerance_m)
    if state in (LevelState.BELOW, LevelState.ABOVE):
        first = len(values) - 1
        while first > 0 and times[first] - times[first - 1] <= stale_ns:
            day_band = by_day.get(readings.index[first - 1].date())
            if day_band is None or _state(float(values[first - 1]), day_band.low_m,
                                          day_band.high_m, tolerance_m) == LevelState.INSIDE:
                break
            first -= 1
        since = readings.index[first].to_pydatetime()
    hours_off = (as_of_ts - pd.Timestamp(since)).total_seconds() / 3600.0 if since else 0.0
    return WaterStatus(as_of, state, target, latest, latest_at, since, hours_off,
                       tuple(day_status))
