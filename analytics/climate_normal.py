"""A weather station's climate normal of daily mean temperature.

The days of a season not yet seen are filled from the normal. A station with
at least ``MIN_YEARS`` earlier years of daily means gets its own normal: the
mean of each calendar day over those years, smoothed with a centred
``SMOOTHING_DAYS`` running mean (a day's mean over a few years is mostly
weather, not climate). Otherwise the region's normal (Hirosaki monthly
normals, :func:`agri.analytics.phenology.normal_year_tmean`) is used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agri.analytics import phenology as ph

MIN_YEARS = 3
SMOOTHING_DAYS = 31


def regional(year: int) -> pd.Series:
    return ph.normal_year_tmean(year)


def station_normal(history: pd.Series, year: int) -> tuple[pd.Series, str]:
    """(daily normal for ``year``, where it came from) from ``history``: a station's
    daily means of earlier years (date-indexed; values of ``year`` and later ignored)."""
    region = regional(year)
    if history is None or history.empty:
        return region, "regional"
    index = pd.DatetimeIndex(pd.to_datetime(history.index))
    series = pd.Series(np.asarray(history, dtype=float), index=index)
    series = series[(series.index.year < year) & np.isfinite(series.to_numpy())]
    years = sorted(set(series.index.year))
    if len(years) < MIN_YEARS:
        return region, "regional"
    doy = np.minimum(series.index.day_of_year, 365)
    by_day = series.groupby(doy).mean().reindex(range(1, 366))
    # Calendar days no earlier year saw (a station that runs only in summer) keep the
    # region's normal shifted by the station's mean departure from it.
    region_doy = pd.Series(region.to_numpy()[:365], index=range(1, 366))
    departure = float((by_day - region_doy).mean())
    by_day = by_day.fillna(region_doy + departure)
    wrapped = pd.concat([by_day.iloc[-SMOOTHING_DAYS:], by_day, by_day.iloc[:SMOOTHING_DAYS]])
    smooth = wrapped.rolling(SMOOTHING_DAYS, center=True).mean().iloc[
        SMOOTHING_DAYS:-SMOOTHING_DAYS]
    days = region.index
    values = smooth.reindex(np.minimum(days.day_of_year, 365)).to_numpy()
    return pd.Series(values, index=days, name="tmean"), f"station ({len(years)} years)"
