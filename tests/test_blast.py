"""BLASTAM against its published rules: the wetness table row by row and at
its boundaries, the classes, and the hourly wetness rules on constructed
nights."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from agri.analytics import agronomy as ag
from agri.analytics.blast import BlastRisk, classify, daily_risk, min_wetness_hours, nights
from agri.clock import TZ

# The published table (pref.mie.lg.jp byogai): mean temperature during
# wetness (whole degrees) -> minimum hours of wetness.
TABLE = {15: 17, 16: 15, 17: 14, 18: 13, 19: 12, 20: 11, 21: 11, 22: 10, 23: 10, 24: 10,
         25: 10}


@pytest.mark.parametrize(("celsius", "hours"), sorted(TABLE.items()))
def test_every_row_of_the_wetness_table(celsius, hours):
    within = 0.9 if celsius < 25 else 0.0  # the table ends at 25 C
    assert min_wetness_hours(celsius) == hours
    assert min_wetness_hours(celsius + within) == hours
    assert classify(wet_hours=hours, wet_mean_c=celsius + within / 2,
                    five_day_mean_c=22.0) is BlastRisk.FAVOURABLE
    if hours - 1 >= 10:
        assert classify(wet_hours=hours - 1, wet_mean_c=celsius + within / 2,
                        five_day_mean_c=22.0) is BlastRisk.SUB_FAVOURABLE


@pytest.mark.parametrize(("wet", "mean", "five", "risk"), [
    (9, 20.0, 22.0, BlastRisk.NOT_FAVOURABLE),     # under 10 h: never favourable
    (10, 22.0, 22.0, BlastRisk.FAVOURABLE),
    (10, 22.0, 19.9, BlastRisk.SUB_FAVOURABLE),    # 5-day mean under 20
    (10, 22.0, 20.0, BlastRisk.FAVOURABLE),        # 20 is in
    (10, 22.0, 25.0, BlastRisk.SUB_FAVOURABLE),    # 25 is out
    (17, 14.9, 22.0, BlastRisk.SUB_FAVOURABLE),    # too cold during wetness
    (17, 15.0, 22.0, BlastRisk.FAVOURABLE),
    (12, 25.0, 22.0, BlastRisk.FAVOURABLE),
    (12, 25.1, 22.0, BlastRisk.SUB_FAVOURABLE),    # too warm during wetness
])
def test_the_classes_at_their_boundaries(wet, mean, five, risk):
    assert classify(wet_hours=wet, wet_mean_c=mean, five_day_mean_c=five) is risk


def test_the_table_is_the_one_in_the_constants():
    assert dict(ag.BLASTAM_MIN_WETNESS_HOURS) == TABLE
    assert min_wetness_hours(14.9) is None and min_wetness_hours(25.5) is None


def night(day: date, **hours: dict) -> pd.DataFrame:
    """Hourly weather from 12:00 on ``day`` to 12:00 the next day, calm, dry,
    dark and at 20 C, with ``hours`` {"HH": {column: value}} set (HH from 16
    to 30, 24 and on being the next morning)."""
    index = pd.date_range(pd.Timestamp(day, tz=TZ) + pd.Timedelta(hours=12), periods=24,
                          freq="h")
    frame = pd.DataFrame({"air_temp": 20.0, "precipitation": 0.0, "wind_speed": 1.0,
                          "sunshine": 0.0}, index=index)
    for hh, values in hours.items():
        at = pd.Timestamp(day, tz=TZ) + pd.Timedelta(hours=int(hh[1:]))
        for column, value in values.items():
            frame.loc[at, column] = value
    return frame


DAY = date(2026, 7, 20)


def wet_hours(frame: pd.DataFrame) -> int:
    return next(n.wet_hours for n in nights(frame) if n.day == DAY)


def test_rain_starts_wetness_an_hour_early_and_it_lasts_to_seven():
    assert wet_hours(night(DAY)) == 0  # no rain, no wetness
    assert wet_hours(night(DAY, h20={"precipitation": 1.0})) == 12  # 19:00-07:00


@pytest.mark.parametrize(("hours", "expected"), [
    ({"h20": {"precipitation": 1.0}, "h25": {"wind_speed": 4.0}}, 6),   # one hour >= 4 m/s
    ({"h20": {"precipitation": 1.0}, "h22": {"wind_speed": 3.0}, "h23": {"wind_speed": 3.0},
      "h24": {"wind_speed": 3.0}}, 5),                                   # 3 h >= 3 m/s
    ({"h20": {"precipitation": 1.0}, "h22": {"wind_speed": 3.0}, "h23": {"wind_speed": 3.0}},
     12),                                                                # only 2 h: stays wet
    ({"h20": {"precipitation": 1.0}, "h29": {"wind_speed": 3.0}}, 10),  # dawn: 3 m/s ends it
    ({"h20": {"precipitation": 1.0}, "h29": {"wind_speed": 3.0, "precipitation": 0.5}},
     12),                                                                # 3 m/s with rain = 2
    ({"h20": {"precipitation": 1.0}, "h30": {"sunshine": 0.3}}, 11),    # morning sun
    ({"h20": {"precipitation": 1.0}, "h30": {"sunshine": 0.2}}, 12),    # 0.2 h is not > 0.2
    ({"h20": {"precipitation": 1.0}, "h23": {"precipitation": 4.0}}, 4),  # washed off
    ({"h20": {"precipitation": 1.0}, "h23": {"precipitation": 3.0},
      "h24": {"precipitation": 3.0}}, 5),                                # 3 mm/h for 2 h
])
def test_the_hourly_rules_end_wetness(hours, expected):
    assert wet_hours(night(DAY, **hours)) == expected


def test_a_leaf_wetness_sensor_replaces_the_estimate():
    frame = night(DAY)  # no rain: the estimate says dry
    frame["leaf_wetness"] = 0.0
    wet_from = pd.Timestamp(DAY, tz=TZ) + pd.Timedelta(hours=18)
    frame.loc[wet_from:wet_from + pd.Timedelta(hours=12), "leaf_wetness"] = 1.0
    got = next(n for n in nights(frame) if n.day == DAY)
    assert (got.source, got.wet_hours) == ("sensor", 13)  # 18:00-06:00 starts, within 16-07


def test_a_favourable_night_asks_for_scouting_a_week_later():
    days = pd.concat([night(date(2026, 7, d)) for d in range(15, 21)])
    days = days[~days.index.duplicated()]
    days.loc[pd.Timestamp(DAY, tz=TZ) + pd.Timedelta(hours=20), "precipitation"] = 1.0
    risk = daily_risk(days).set_index("day")
    assert risk.loc[DAY, "risk"] is BlastRisk.FAVOURABLE  # 12 h at 20 C, 5-day mean 20 C
    assert risk.loc[DAY, "scout_from"] == date(2026, 7, 27)
    assert risk.loc[date(2026, 7, 19), "risk"] is BlastRisk.NOT_FAVOURABLE
