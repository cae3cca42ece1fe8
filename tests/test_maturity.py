"""Harvest-timing map from the red band: classes monotone in red reflectance,
the 17-37 days after heading checked per field and refused for the whole
image, and the harvest order of a region's fields."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from agri.analytics import agronomy as ag
from agri.analytics.maturity import (
    HARVEST_CLASS_COLOURS,
    HARVEST_CLASSES,
    MaturityError,
    check_red_band,
    harvest_order,
    rank_maturity,
)

IMAGE = date(2025, 9, 5)


def make_stats(red: list[float] | np.ndarray, *, valid: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"red_mean": red, "valid_fraction": valid},
                        index=pd.Index([f"f{i}" for i in range(len(red))], name="field"))


def test_classes_are_monotone_in_red_reflectance():
    rng = np.random.default_rng(1)
    stats = make_stats(rng.uniform(0.03, 0.12, 53))
    got = rank_maturity(stats).sort_values("red_mean", ascending=False)
    assert got["harvest_class"].is_monotonic_increasing
    assert got["ripeness_rank"].tolist() == list(range(1, 54))
    counts = got["harvest_class"].value_counts().sort_index()
    assert counts.index.tolist() == list(range(1, HARVEST_CLASSES + 1))
    assert counts.min() >= 53 // HARVEST_CLASSES
    assert got["colour"].iloc[0] == HARVEST_CLASS_COLOURS[0] == "#d7191c"  # red: earliest
    assert got["colour"].iloc[-1] == HARVEST_CLASS_COLOURS[-1] == "#1a9641"  # green: latest
    assert (got["window"] == "unknown").all() and (got["note"] == "").all()


def test_ten_fields_two_per_class_and_ties_share_a_class():
    stats = make_stats([0.01 * i for i in range(1, 11)])
    got = rank_maturity(stats)
    assert got["harvest_class"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert got["ripeness_rank"].tolist() == list(range(10, 0, -1))
    tied = rank_maturity(make_stats([0.05, 0.05, 0.09, 0.01, 0.05]))
    assert tied["ripeness_rank"].tolist() == [2, 2, 1, 5, 2]
    assert tied["harvest_class"].tolist() == [2, 2, 1, 5, 2]


def test_image_date_is_checked_per_field():
    low, high = ag.HARVEST_MAP_DAYS_AFTER_HEADING
    stats = make_stats([0.05, 0.06, 0.07, 0.08, 0.09])
    heading = {"f0": IMAGE - timedelta(days=low - 1), "f1": IMAGE - timedelta(days=low),
               "f2": IMAGE - timedelta(days=high), "f3": IMAGE - timedelta(days=high + 1)}
    got = rank_maturity(stats, image_date=IMAGE, heading=heading)
    assert got["window"].tolist() == ["before", "in", "in", "after", "unknown"]
    assert got["days_after_heading"].iloc[:4].tolist() == [16, 17, 37, 38]
    assert pd.isna(got.loc["f0", "ripeness_rank"]) and pd.isna(got.loc["f3", "harvest_class"])
    assert got.loc["f0", "note"] == "image 16 days after heading; the map needs 17-37 days"
    assert got.loc["f4", "note"] == "heading date unknown: image date not checked"
    assert got["ripeness_rank"].dropna().tolist() == [3, 2, 1]  # f1, f2, f4 ranked
    assert got.loc["f0", "colour"] is None


def test_image_outside_the_window_for_every_field_is_refused():
    stats = make_stats([0.05, 0.06])
    heading = pd.Series({"f0": pd.Timestamp("2025-08-28"), "f1": date(2025, 8, 30)})
    with pytest.raises(MaturityError) as err:
        rank_maturity(stats, image_date=IMAGE, heading=heading)
    assert str(err.value) == (
        "the image of 2025-09-05 was taken 6 to 8 days after the fields' heading; the "
        "harvest-timing map needs an image 17-37 days after heading (for these fields "
        "between 2025-09-14 and 2025-10-06)")


def test_bad_inputs_are_refused_or_marked():
    stats = make_stats([0.05, np.nan, 1.7, 0.06, -0.01])
    stats.loc["f3", "valid_fraction"] = 0.3
    got = rank_maturity(stats)
    assert got["note"].tolist() == ["", "red_mean missing or outside 0-1",
                                    "red_mean missing or outside 0-1",
                                    "valid_fraction 0.30 below 0.5",
                                    "red_mean missing or outside 0-1"]
    assert got["ripeness_rank"].tolist()[0] == 1 and got["ripeness_rank"].isna().sum() == 4
    with pytest.raises(MaturityError, match="image_date"):
        rank_maturity(stats, heading={"f0": IMAGE})
    with pytest.raises(MaturityError, match="must be a date, not str"):
        rank_maturity(stats, image_date=IMAGE, heading={"f0": "yesterday"})
    with pytest.raises(MaturityError, match="lack red_mean"):
        rank_maturity(stats.drop(columns="red_mean"))
    with pytest.raises(MaturityError, match="more than once"):
        rank_maturity(pd.concat([stats, stats.iloc[:1]]))
    with pytest.raises(MaturityError, match="mapping or Series"):
        rank_maturity(stats, image_date=IMAGE, heading=[IMAGE])
    nothing = rank_maturity(make_stats([0.05, 0.06], valid=0.0))
    assert nothing["ripeness_rank"].isna().all()


def test_datetimes_and_missing_heading_dates():
    stats = make_stats([0.05, 0.06])
    got = rank_maturity(stats, image_date=datetime(2025, 9, 5, 10, 30),
                        heading={"f0": np.datetime64("2025-08-10"), "f1": pd.NaT})
    assert got["days_after_heading"].iloc[0] == 26
    assert got["window"].tolist() == ["in", "unknown"]


def test_red_band_must_cover_the_maps_red():
    for band in ag.P4M_BANDS:
        if band.name == "red":
            check_red_band(band)  # 634-666 nm overlaps 658-670
    check_red_band(ag.Band("B4", 665.0, 15.0))  # Sentinel-2 red
    with pytest.raises(MaturityError, match="misses the 658-670 nm"):
        rank_maturity(make_stats([0.05]), red_band=ag.Band("red", 620.0, 10.0))


def test_harvest_order_by_class_then_thermal_time():
    maturity = pd.DataFrame({
        "harvest_class": pd.array([1, 1, 2, 2, None, None], dtype="Int64"),
        "ripeness_rank": pd.array([2, 1, 3, 4, None, None], dtype="Int64"),
    }, index=["a", "b", "c", "d", "e", "f"])
    opens = {"a": date(2025, 9, 10), "b": date(2025, 9, 12), "c": date(2025, 9, 11),
             "d": date(2025, 9, 11), "e": date(2025, 9, 11), "g": date(2025, 9, 1)}
    got = harvest_order(maturity, opens)
    # g opens before every ranked field; e fits in before b (12 Sep) within class 1;
    # c and d tie on the date and go by rank; f has neither and comes last.
    assert got.index.tolist() == ["g", "a", "e", "b", "c", "d", "f"]
    assert got["order"].tolist() == list(range(1, 8))
    assert got.loc["a", "basis"] == "red and thermal time"
    assert got.loc["e", "basis"] == "thermal time"
    assert got.loc["f", "basis"] == "none"
    assert got.loc["b", "opens"] == date(2025, 9, 12)


def test_harvest_order_from_a_map_and_hostile_dates():
    rng = np.random.default_rng(2)
    stats = make_stats(rng.uniform(0.03, 0.12, 20))
    maturity = rank_maturity(stats)
    day = date(2025, 9, 10)
    got = harvest_order(maturity, dict.fromkeys(stats.index, day))
    assert got["harvest_class"].is_monotonic_increasing
    assert got["ripeness_rank"].is_monotonic_increasing
    with pytest.raises(MaturityError, match="opening date of field f0 must be a date"):
        harvest_order(maturity, {"f0": 20250910})
