"""Rice phenology and temperature damage from daily weather.

Pure functions over daily values. A daily series is a ``pandas.Series``
indexed by local calendar dates (``DatetimeIndex`` or ``datetime.date``),
one value per day, temperatures in Cel.

- Day length: astronomical sunrise to sunset, from :mod:`agri.analytics.solar`
  (the CBM day length that SIMRIW's ports use, with Spencer's declination).
- Development: DVR/DVI model (Horie & Nakagawa 1990) with SIMRIW's ripening
  phase; numbers in :mod:`agri.analytics.agronomy`.
- Cold sterility (SIMRIW cooling degree-days), chalky grain (Saitama
  regression) and heat sterility (SIMRIW).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag
from agri.analytics import solar

G_SEARCH_BOUNDS = (10.0, 150.0)  # days; fit_g searches this range
G_TOLERANCE = 1e-3  # days
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_NOT_REACHED_PENALTY_DAYS = 365.0


class PhenologyError(ValueError):
    """Daily input cannot be used; the message says what to pass instead."""


def day_length(latitude_deg: float, when: date | Iterable[date] | pd.DatetimeIndex
               ) -> float | np.ndarray:
    """Day length in hours at ``latitude_deg`` on a date or on each of several dates."""
    if isinstance(when, date):
        return float(solar.day_length_h(latitude_deg, when.timetuple().tm_yday))
    doy = pd.DatetimeIndex(list(when) if not isinstance(when, pd.DatetimeIndex) else when)
    return solar.day_length_h(latitude_deg, np.asarray(doy.day_of_year, dtype=float))


def daily_series(values: pd.Series) -> pd.Series:
    """``values`` re-indexed by tz-naive midnight dates, sorted, gaps rejected."""
    index = pd.DatetimeIndex(pd.to_datetime(values.index))
    if index.tz is not None:
        index = index.tz_localize(None)
    out = pd.Series(np.asarray(values, dtype=float), index=index.normalize()).sort_index()
    if len(out) > 1 and (np.diff(out.index) != pd.Timedelta(days=1)).any():
        raise PhenologyError("pass one value per consecutive day (no gaps or duplicates)")
    return out


def development_rate(*, dvi: float, tmean_c: float, day_length_h: float,
                     cultivar: ag.CultivarParams) -> float:
    """DVR (1/day) for one day at development index ``dvi``."""
    if dvi >= ag.DVI_HEADING:
        effective = max(tmean_c - ag.RIPENING_TCR_C, 0.0)
        return (1.0 - math.exp(-ag.RIPENING_KCR_PER_C * effective)) / ag.RIPENING_GR_DAYS
    rate = 1.0 / (cultivar.g * (1.0 + math.exp(-cultivar.a * (tmean_c - cultivar.th))))
    if dvi >= cultivar.dvi_star:
        rate *= 1.0 - math.exp(cultivar.b * min(day_length_h - cultivar.lc, 0.0))
    return rate


@dataclass(frozen=True, slots=True)
class Phenology:
    """DVI at the end of each day from transplanting, and the stage dates.

    ``heading``/``maturity`` are the days on which DVI reaches 1 and 2 (None
    when the weather ends first); ``heading_day`` is fractional days from the
    start of transplanting day to heading, interpolated within the day.
    """

    dvi: pd.Series
    heading: date | None
    maturity: date | None
    heading_day: float | None

    def dvi_on(self, day: date) -> float:
        """DVI at the end of ``day`` (0 before transplanting, held after the series)."""
        stamp = pd.Timestamp(day)
        if stamp < self.dvi.index[0]:
            return ag.DVI_TRANSPLANTING
        return float(self.dvi.loc[:stamp].iloc[-1])


def simulate_phenology(*, cultivar: ag.CultivarParams, transplanted_on: date, tmean: pd.Series,
                       latitude_deg: float = ag.TSUGARU_LATITUDE_DEG,
                       water_tmean: pd.Series | None = None) -> Phenology:
    """Step DVI daily from transplanting (DVI = 0) with daily mean temperature.

    ``tmean`` must cover transplanting day; stepping stops at the series' end.
    ``water_tmean`` (daily mean paddy water temperature, gaps allowed) replaces
    the air temperature on the days it has a value while DVI is below panicle
    initiation: until then the growing point is under water.
    DVI is held at 2 after maturity.
    """
    series = daily_series(tmean)
    start = pd.Timestamp(transplanted_on)
    if start not in series.index:
        raise PhenologyError(f"tmean must include the transplanting day {transplanted_on}")
    season = series.loc[start:]
    lengths = solar.day_length_h(latitude_deg, np.asarray(season.index.day_of_year, dtype=float))
    temps = season.to_numpy()
    water = _water_on(water_tmean, season.index)
    dvi = np.empty(len(season))
    value = ag.DVI_TRANSPLANTING
    heading_i = maturity_i = None
    heading_day = None
    for i in range(len(season)):
        before = value
        if value < ag.DVI_MATURITY:
            t = (water[i] if water is not None and value < ag.DVI_PANICLE_INITIATION
                 and not math.isnan(water[i]) else temps[i])
            value = min(value + development_rate(dvi=value, tmean_c=float(t),
                                                 day_length_h=float(lengths[i]), cultivar=cultivar),
                        ag.DVI_MATURITY)
        dvi[i] = value
        if heading_i is None and value >= ag.DVI_HEADING:
            heading_i = i
            heading_day = i + (ag.DVI_HEADING - before) / (value - before)
        if maturity_i is None and value >= ag.DVI_MATURITY:
            maturity_i = i
    days = season.index
    return Phenology(
        dvi=pd.Series(dvi, index=days, name="dvi"),
        heading=None if heading_i is None else days[heading_i].date(),
        maturity=None if maturity_i is None else days[maturity_i].date(),
        heading_day=heading_day,
    )


def _water_on(water_tmean: pd.Series | None, days: pd.DatetimeIndex) -> np.ndarray | None:
    if water_tmean is None or water_tmean.empty:
        return None
    index = pd.DatetimeIndex(pd.to_datetime(water_tmean.index))
    if index.tz is not None:
        index = index.tz_localize(None)
    water = pd.Series(np.asarray(water_tmean, dtype=float), index=index.normalize())
    water = water[~water.index.duplicated(keep="last")]
    return water.reindex(days).to_numpy(dtype=float)


@dataclass(frozen=True, slots=True)
class HeadingObservation:
    """An observed heading date of a field with the daily mean temperature it saw
    (and its paddy water temperature where a sensor measured it)."""

    transplanted_on: date
    heading_on: date
    tmean: pd.Series
    latitude_deg: float = ag.TSUGARU_LATITUDE_DEG
    water_tmean: pd.Series | None = None


def fit_g(observations: Sequence[HeadingObservation], *, cultivar: ag.CultivarParams,
          bounds: tuple[float, float] = G_SEARCH_BOUNDS) -> float:
    """G (days) minimising the squared heading error over ``observations``.

    The other parameters of ``cultivar`` are kept. Golden-section search on
    the fractional heading day (continuous in G); an observed heading day
    counts as the middle of that day.
    """
    if not observations:
        raise PhenologyError("pass at least one heading observation")

    def loss(g: float) -> float:
        return heading_loss(observations, _with_g(cultivar, g))

    low, high = bounds
    x1 = high - _GOLDEN * (high - low)
    x2 = low + _GOLDEN * (high - low)
    f1, f2 = loss(x1), loss(x2)
    while high - low > G_TOLERANCE:
        if f1 <= f2:
            high, x2, f2 = x2, x1, f1
            x1 = high - _GOLDEN * (high - low)
            f1 = loss(x1)
        else:
            low, x1, f1 = x1, x2, f2
            x2 = low + _GOLDEN * (high - low)
            f2 = loss(x2)
    return (low + high) / 2.0


def _with_g(cultivar: ag.CultivarParams, g: float) -> ag.CultivarParams:
    return replace(cultivar, g=g)


CALIBRATED_PARAMS = ("g", "th")  # refitted from recorded heading dates; the rest stay published
FIT_TOLERANCE = 1e-2  # of the parameters (days, Cel) and of the loss (days squared)
FIT_MAX_ITERATIONS = 300


def heading_loss(observations: Sequence[HeadingObservation], cultivar: ag.CultivarParams
                 ) -> float:
    """Sum of squared heading errors (days) of ``cultivar`` over ``observations``; an
    observed heading day counts as the middle of that day."""
    total = 0.0
    for obs in observations:
        result = simulate_phenology(cultivar=cultivar, transplanted_on=obs.transplanted_on,
                                    tmean=obs.tmean, latitude_deg=obs.latitude_deg,
                                    water_tmean=obs.water_tmean)
        observed = (obs.heading_on - obs.transplanted_on).days + 0.5
        predicted = (result.heading_day if result.heading_day is not None
                     else len(result.dvi) + _NOT_REACHED_PENALTY_DAYS)
        total += (predicted - observed) ** 2
    return total


def fit_cultivar(observations: Sequence[HeadingObservation], *, cultivar: ag.CultivarParams,
                 params: Sequence[str] = CALIBRATED_PARAMS) -> ag.CultivarParams:
    """``cultivar`` with ``params`` refitted to minimise the squared heading error.

    G alone (:func:`fit_g`) moves every season by the same days; refitting Th as
    well lets the temperature response follow the recorded seasons, which matters
    when their summers differ. Nelder-Mead from G fitted alone and the published
    Th; G is kept within G_SEARCH_BOUNDS.
    """
    from scipy.optimize import minimize

    if not observations:
        raise PhenologyError("pass at least one heading observation")
    start = _with_g(cultivar, fit_g(observations, cultivar=cultivar))
    names = tuple(params)
    if names == ("g",):
        return start

    def loss(x: np.ndarray) -> float:
        values = dict(zip(names, (float(v) for v in x), strict=True))
        if not G_SEARCH_BOUNDS[0] <= values.get("g", start.g) <= G_SEARCH_BOUNDS[1]:
            return math.inf
        return heading_loss(observations, replace(start, **values))

    found = minimize(loss, [getattr(start, n) for n in names], method="Nelder-Mead",
                     options={"xatol": FIT_TOLERANCE, "fatol": FIT_TOLERANCE,
                              "maxiter": FIT_MAX_ITERATIONS})
    best = replace(start, **dict(zip(names, (float(v) for v in found.x), strict=True)))
    return best if heading_loss(observations, best) <= heading_loss(observations, start) \
        else start


def normal_year_tmean(year: int, monthly_c: Sequence[float] = ag.HIROSAKI_NORMAL_MONTHLY_TMEAN_C
                      ) -> pd.Series:
    """Daily mean temperature (Cel) of a climatological year: the 12 monthly means
    placed at mid-month and linearly interpolated (wrapping over the year end)."""
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    origin = pd.Timestamp(year, 1, 1)
    mids = np.array([(pd.Timestamp(year, m, 15) - origin).days for m in range(1, 13)], float)
    length = float(len(days))
    x = np.concatenate(([mids[-1] - length], mids, [mids[0] + length]))
    y = np.concatenate(([monthly_c[-1]], monthly_c, [monthly_c[0]]))
    return pd.Series(np.interp(np.arange(length), x, y), index=days, name="tmean")


# --- Cold damage (section 4) ----------------------------------------------------------


def cooling_degree_days(tmean: pd.Series, dvi: pd.Series, *,
                        base_c: float = ag.COLD_Q_BASE_C,
                        window: tuple[float, float] = ag.COLD_DVI_WINDOW) -> float:
    """SIMRIW Q (Cel-day): sum of max(base - Tmean, 0) over days whose end-of-day
    DVI lies in ``window`` (inclusive)."""
    temps = daily_series(tmean)
    stage = daily_series(dvi)
    both = pd.concat([temps.rename("t"), stage.rename("dvi")], axis=1, join="inner")
    inside = both[(both["dvi"] >= window[0]) & (both["dvi"] <= window[1])]
    return float(np.maximum(base_c - inside["t"].to_numpy(), 0.0).sum())


def cold_sterility_pct(q_cday: float | np.ndarray) -> float | np.ndarray:
    """SIMRIW spikelet sterility (%) from cooling degree-days Q: 4.6 + 0.054 Q^1.56, <= 100."""
    q = np.maximum(np.asarray(q_cday, dtype=float), 0.0)
    pct = np.minimum(ag.COLD_STERILITY_INTERCEPT_PCT
                     + ag.COLD_STERILITY_COEF * q ** ag.COLD_STERILITY_EXPONENT,
                     ag.STERILITY_MAX_PCT)
    return float(pct) if pct.ndim == 0 else pct


# --- Heat damage (section 5) ------------------------------------------------------------


def chalky_grain_pct(tmean: pd.Series, heading: date) -> float:
    """Chalky grain (%) = 1.785 + 0.685 t, t = sum of (Tmean - 27) above zero over the
    30 days after heading (heading day excluded)."""
    temps = daily_series(tmean)
    start = pd.Timestamp(heading + timedelta(days=1))
    window = temps.loc[start:start + pd.Timedelta(days=ag.CHALKY_DAYS_AFTER_HEADING - 1)]
    excess = float(np.maximum(window.to_numpy() - ag.CHALKY_BASE_C, 0.0).sum())
    return ag.CHALKY_INTERCEPT_PCT + ag.CHALKY_SLOPE_PCT_PER_CDAY * excess


def post_heading_mean_c(tmean: pd.Series, heading: date,
                        days: int = ag.CHALKY_RISK_DAYS) -> float:
    """Mean temperature (Cel) of the ``days`` days after heading; chalky risk above 26-27."""
    temps = daily_series(tmean)
    start = pd.Timestamp(heading + timedelta(days=1))
    return float(temps.loc[start:start + pd.Timedelta(days=days - 1)].mean())


def heat_sterility_pct(mean_tmax_c: float | np.ndarray) -> float | np.ndarray:
    """SIMRIW heat sterility (%) from the mean daily maximum around flowering."""
    t = np.asarray(mean_tmax_c, dtype=float)
    pct = 100.0 / (1.0 + np.exp(-ag.HEAT_STERILITY_SLOPE_PER_C * (t - ag.HEAT_STERILITY_MID_C)))
    return float(pct) if pct.ndim == 0 else pct


def flowering_mean_tmax_c(tmax: pd.Series, dvi: pd.Series, *,
                          window: tuple[float, float] = ag.HEAT_STERILITY_DVI_WINDOW) -> float:
    """Mean daily maximum (Cel) over days with ``window[0] < DVI < window[1]`` (SIMRIW)."""
    both = pd.concat([daily_series(tmax).rename("t"), daily_series(dvi).rename("dvi")],
                     axis=1, join="inner")
    inside = both[(both["dvi"] > window[0]) & (both["dvi"] < window[1])]
    return float(inside["t"].mean()) if len(inside) else float("nan")


# --- Harvest timing (section 3) ----------------------------------------------------------


def harvest_window(tmean: pd.Series, heading: date, *,
                   thermal_time: ag.HarvestThermalTime = ag.PREFECTURE_HARVEST
                   ) -> tuple[date | None, date | None]:
    """Days on which the daily mean temperature accumulated after heading (heading
    day excluded) reaches the start and end of ``thermal_time``; None if not reached."""
    temps = daily_series(tmean).loc[pd.Timestamp(heading + timedelta(days=1)):]
    total = temps.cumsum()

    def reached(cday: float) -> date | None:
        hit = total[total >= cday]
        return None if hit.empty else hit.index[0].date()

    return reached(thermal_time.start_cday), reached(thermal_time.end_cday)
