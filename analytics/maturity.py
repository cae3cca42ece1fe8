"""Harvest-timing map: relative ripeness of fields from the red band.

As the canopy yellows after heading, chlorophyll goes and red reflectance
rises, so within one image the fields with the highest red reflectance are the
ripest. Aomori's harvest-timing map reads red reflectance (658-670 nm) from an
image taken 17-37 days after heading (Sakaiya et al. 2016); outside that
period red does not rank ripening (before it every canopy is still green,
after it every canopy is yellow). The map is relative: classes are quantiles of
the fields' red means within the image, class 1 (red) the earliest to harvest
and class 5 (green) the latest, as the prefecture colours it.

:func:`harvest_order` then orders a region's fields for harvest from the map's
classes and the harvest-window opening dates of the thermal-time model.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from agri.analytics import agronomy as ag

logger = logging.getLogger(__name__)

HARVEST_CLASSES = 5
# Class 1 (earliest) to 5 (latest): ColorBrewer RdYlGn, 5 classes (red to green,
# the direction of the prefecture's map).
HARVEST_CLASS_COLOURS = ("#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641")
REFLECTANCE_RANGE = (0.0, 1.0)


class MaturityError(ValueError):
    """The harvest-timing map cannot be made from these inputs; the message
    says what to fix."""


class Window(StrEnum):
    """Where the image falls against a field's 17-37 days after heading."""

    IN = "in"
    BEFORE = "before"  # too soon after heading: every canopy still green
    AFTER = "after"  # too late: every canopy yellow
    UNKNOWN = "unknown"  # the field's heading date was not given


def check_red_band(band: ag.Band) -> None:
    """Refuse a red band whose pass band misses 658-670 nm."""
    low, high = ag.HARVEST_MAP_RED_NM
    if band.centre_nm + band.half_width_nm < low or band.centre_nm - band.half_width_nm > high:
        raise MaturityError(
            f"band {band.name!r} ({band.centre_nm:g} +- {band.half_width_nm:g} nm) misses the "
            f"{low:g}-{high:g} nm red of the harvest-timing map: map the source's red band")


def rank_maturity(
    stats: pd.DataFrame,
    *,
    image_date: date | None = None,
    heading: Mapping[Any, Any] | pd.Series | None = None,
    red_band: ag.Band | None = None,
    min_valid_fraction: float = ag.MAP_MIN_VALID_FRACTION,
) -> pd.DataFrame:
    """Per-field ripeness rank and harvest-map class from an image's
    statistics (``red_mean``, ``valid_fraction``, indexed by field).

    With ``heading`` (field -> heading date, observed or expected) the image
    date is checked per field: fields outside 17-37 days after heading are
    marked and left unranked, and an image outside it for every field with a
    heading date is refused. Columns: ``red_mean``, ``days_after_heading``
    (NaN when unknown), ``window`` (a Window value), ``ripeness_rank`` (1 =
    ripest, among the ranked fields), ``harvest_class`` (1 earliest ..
    HARVEST_CLASSES latest), ``colour`` (hex) and ``note`` (why a field is
    unranked or unchecked; empty otherwise).
    """
    if red_band is not None:
        check_red_band(red_band)
    if not isinstance(stats, pd.DataFrame):
        raise MaturityError("image statistics must be a DataFrame indexed by field id")
    for column in ("red_mean", "valid_fraction"):
        if column not in stats.columns:
            raise MaturityError(f"image statistics lack {column}: the harvest-timing map needs "
                                "the red band and the valid-pixel fraction")
    if stats.index.has_duplicates:
        dup = list(stats.index[stats.index.duplicated()].unique()[:10])
        raise MaturityError(f"image statistics list field(s) {dup} more than once")

    red = pd.to_numeric(stats["red_mean"], errors="coerce").astype(float)
    valid = pd.to_numeric(stats["valid_fraction"], errors="coerce").astype(float).fillna(0.0)
    days, window = _windows(stats.index, image_date, heading)

    low, high = ag.HARVEST_MAP_DAYS_AFTER_HEADING
    notes = pd.Series("", index=stats.index, dtype=object)
    if heading is not None:
        notes[window == Window.UNKNOWN] = "heading date unknown: image date not checked"
    out_of_window = window.isin([Window.BEFORE, Window.AFTER])
    for fid in stats.index[out_of_window]:
        notes[fid] = (f"image {int(days[fid])} days after heading; the map needs "
                      f"{low}-{high} days")
    r_low, r_high = REFLECTANCE_RANGE
    bad_red = ~(red.between(r_low, r_high))
    notes[bad_red] = "red_mean missing or outside 0-1"
    cloudy = valid < min_valid_fraction
    notes[cloudy & ~bad_red] = [f"valid_fraction {v:.2f} below {min_valid_fraction:g}"
                                for v in valid[cloudy & ~bad_red]]
    eligible = ~out_of_window & ~bad_red & ~cloudy

    if heading is not None and image_date is not None:
        known = window != Window.UNKNOWN
        if known.any() and not (window == Window.IN).any():
            raise MaturityError(_refusal(image_date, days[known], heading, stats.index[known]))
        if out_of_window.any():
            logger.warning("harvest-timing map of %s: %d of %d fields outside %d-%d days after "
                           "heading, left unranked", image_date, int(out_of_window.sum()),
                           len(stats), low, high)

    rank = red[eligible].rank(ascending=False, method="min")
    n = int(eligible.sum())
    cls = 1 + ((rank - 1) * HARVEST_CLASSES // n) if n else rank
    result = pd.DataFrame({
        "red_mean": red,
        "days_after_heading": days,
        "window": window.map(str),
        "ripeness_rank": rank.reindex(stats.index).astype("Int64"),
        "harvest_class": pd.Series(cls, dtype=float).reindex(stats.index).astype("Int64"),
    }, index=stats.index)
    result["colour"] = pd.Series([None if pd.isna(c) else HARVEST_CLASS_COLOURS[int(c) - 1]
                                  for c in result["harvest_class"]], index=stats.index,
                                 dtype=object)
    result["note"] = notes
    if not n:
        logger.warning("harvest-timing map of %s: no field could be ranked", image_date)
    return result


def harvest_order(
    maturity: pd.DataFrame,
    opens: Mapping[Any, Any] | pd.Series,
) -> pd.DataFrame:
    """The order in which to harvest a region's fields, earliest first.

    ``maturity`` is :func:`rank_maturity`'s result for the region's image;
    ``opens`` maps field -> the date its harvest window opens (thermal-time
    model). Fields are ordered by map class, within a class by opening date,
    then by ripeness rank (the red measure decides where the thermal time
    ties). A field the image could not rank comes just before the first ranked
    field whose window opens later than its own; fields with neither a class
    nor an opening date come last. Columns: ``order`` (1 first),
    ``harvest_class``, ``ripeness_rank``, ``opens``, ``basis`` (what placed
    the field).
    """
    opening = {fid: _as_date(v, what=f"opening date of field {fid}")
               for fid, v in _items(opens)}
    classes = maturity["harvest_class"] if "harvest_class" in maturity else pd.Series(dtype=float)
    ranks = maturity["ripeness_rank"] if "ripeness_rank" in maturity else pd.Series(dtype=float)
    fields = list(dict.fromkeys([*maturity.index, *opening]))

    def cls_of(fid: Any) -> int | None:
        c = classes.get(fid)
        return None if c is None or pd.isna(c) else int(c)

    def rank_of(fid: Any) -> int | None:
        r = ranks.get(fid)
        return None if r is None or pd.isna(r) else int(r)

    far = date.max
    ranked = sorted((f for f in fields if cls_of(f) is not None),
                    key=lambda f: (cls_of(f), opening.get(f) or far, rank_of(f), str(f)))
    unranked = sorted((f for f in fields if cls_of(f) is None and opening.get(f)),
                      key=lambda f: (opening[f], str(f)))
    ordered: list[Any] = []
    pending = list(unranked)
    for fid in ranked:
        own = opening.get(fid)
        while pending and own is not None and opening[pending[0]] < own:
            ordered.append(pending.pop(0))
        ordered.append(fid)
    ordered += pending
    ordered += [f for f in fields if cls_of(f) is None and not opening.get(f)]

    def basis(fid: Any) -> str:
        parts = (["red"] if cls_of(fid) is not None else []) + (
            ["thermal time"] if opening.get(fid) else [])
        return " and ".join(parts) or "none"

    return pd.DataFrame({
        "order": range(1, len(ordered) + 1),
        "harvest_class": pd.array([cls_of(f) for f in ordered], dtype="Int64"),
        "ripeness_rank": pd.array([rank_of(f) for f in ordered], dtype="Int64"),
        "opens": [opening.get(f) for f in ordered],
        "basis": [basis(f) for f in ordered],
    }, index=pd.Index(ordered, dtype=object, name=maturity.index.name))


def _windows(index: pd.Index, image_date: Any, heading: Any) -> tuple[pd.Series, pd.Series]:
    """Days after heading and window per field."""
    days = pd.Series(np.nan, index=index, dtype=float)
    window = pd.Series(Window.UNKNOWN, index=index, dtype=object)
    if heading is None:
        return days, window
    if image_date is None:
        raise MaturityError("pass image_date with heading dates, to check the 17-37 days")
    taken = _as_date(image_date, what="image_date")
    if taken is None:
        raise MaturityError("image_date is missing: pass the date the image was taken")
    low, high = ag.HARVEST_MAP_DAYS_AFTER_HEADING
    for fid, value in _items(heading):
        if fid not in index:
            continue
        headed = _as_date(value, what=f"heading date of field {fid}")
        if headed is None:
            continue
        d = (taken - headed).days
        days[fid] = d
        window[fid] = Window.IN if low <= d <= high else (Window.BEFORE if d < low
                                                          else Window.AFTER)
    return days, window


def _refusal(taken: Any, days: pd.Series, heading: Any, fields: pd.Index) -> str:
    low, high = ag.HARVEST_MAP_DAYS_AFTER_HEADING
    headed = pd.Series({fid: _as_date(v, what="heading") for fid, v in _items(heading)})
    headed = headed[headed.index.isin(fields)].dropna()
    first = headed.min() + timedelta(days=low)
    last = headed.max() + timedelta(days=high)
    return (f"the image of {_as_date(taken, what='image_date')} was taken "
            f"{int(days.min())} to {int(days.max())} days after the fields' heading; the "
            f"harvest-timing map needs an image {low}-{high} days after heading (for these "
            f"fields between {first:%Y-%m-%d} and {last:%Y-%m-%d})")


def _items(mapping: Any) -> list[tuple[Any, Any]]:
    if isinstance(mapping, pd.Series | Mapping):
        return list(mapping.items())
    raise MaturityError("pass dates as a mapping or Series from field id to date")


def _as_date(value: Any, *, what: str) -> date | None:
    """A calendar date, None for a missing one; anything else is refused."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).date()
    raise MaturityError(f"{what} must be a date, not {type(value).__name__} {str(value)[:40]!r}")
