"""Water band: the target depth of each stage on the calendar of a reference
season (transplanting 20 May, heading 5 Aug), moved by cold days and by the
heading estimate; and measured levels against it, hour by hour in Asia/Tokyo
days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from agri.analytics.water_band import (
    STALE_AFTER_S,
    BandDay,
    LevelState,
    Phase,
    WaterBandError,
    compare,
    daily_band,
    phase_days,
)
from agri.clock import TZ

T = date(2025, 5, 20)
H = date(2025, 8, 5)
SEASON = (date(2025, 5, 1), date(2025, 10, 31))


def band_on(day: date, **kw) -> BandDay:
    (b,) = daily_band(transplanted_on=T, heading=kw.pop("heading", H), days=[day], **kw)
    return b


# The published depths (cm) of each stage, at the first and last day of each phase.
@pytest.mark.parametrize(("day", "phase", "low_cm", "high_cm"), [
    (date(2025, 5, 20), Phase.AFTER_TRANSPLANTING, 2, 3),   # Aomori, sunny day
    (date(2025, 5, 26), Phase.AFTER_TRANSPLANTING, 2, 3),
    (date(2025, 5, 27), Phase.TILLERING, 2, 4),             # about 3 cm
    (date(2025, 6, 25), Phase.TILLERING, 2, 4),
    (date(2025, 6, 26), Phase.MIDSEASON_DRAINAGE, -100, 0),  # 40 days before heading
    (date(2025, 7, 1), Phase.MIDSEASON_DRAINAGE, -100, 0),   # 35 days before heading
    (date(2025, 7, 2), Phase.INTERMITTENT, -10, 6),
    (date(2025, 7, 10), Phase.INTERMITTENT, -10, 6),
    (date(2025, 7, 11), Phase.PRECONDITIONING, 10, 12),     # 25 days before heading
    (date(2025, 7, 19), Phase.PRECONDITIONING, 10, 12),
    (date(2025, 7, 20), Phase.MEIOSIS, 10, 12),             # 16 days before heading
    (date(2025, 7, 29), Phase.MEIOSIS, 10, 12),             # 7 days before heading
    (date(2025, 7, 30), Phase.BEFORE_HEADING, 10, 12),
    (date(2025, 8, 4), Phase.BEFORE_HEADING, 10, 12),
    (date(2025, 8, 5), Phase.AFTER_HEADING, 5, 6),          # first 10 days after heading
    (date(2025, 8, 14), Phase.AFTER_HEADING, 5, 6),
    (date(2025, 8, 15), Phase.INTERMITTENT_RIPENING, -10, 6),
    (date(2025, 9, 3), Phase.INTERMITTENT_RIPENING, -10, 6),
    (date(2025, 9, 4), Phase.FINAL_DRAINAGE, -100, 0),      # 30 days after heading
    (date(2025, 10, 31), Phase.FINAL_DRAINAGE, -100, 0),
])
def test_reference_season_at_each_phase_boundary(day, phase, low_cm, high_cm):
    b = band_on(day)
    assert (b.day, b.phase) == (day, phase)
    assert round(b.low_m * 100) == low_cm and round(b.high_m * 100) == high_cm
    assert b.source


def test_every_season_day_from_transplanting_has_one_band_in_phase_order():
    band = daily_band(transplanted_on=T, heading=H, days=SEASON)
    assert band[0].day == T and band[-1].day == SEASON[1]
    assert all((b.day - a.day).days == 1 for a, b in zip(band, band[1:], strict=False))
    order = [b.phase for b in band]
    runs = [p for i, p in enumerate(order) if i == 0 or order[i - 1] != p]
    assert runs == [Phase.AFTER_TRANSPLANTING, Phase.TILLERING, Phase.MIDSEASON_DRAINAGE,
                    Phase.INTERMITTENT, Phase.PRECONDITIONING, Phase.MEIOSIS,
                    Phase.BEFORE_HEADING, Phase.AFTER_HEADING, Phase.INTERMITTENT_RIPENING,
                    Phase.FINAL_DRAINAGE]
    assert phase_days(band, Phase.MEIOSIS) == (date(2025, 7, 20), date(2025, 7, 29))
    assert phase_days(band, Phase.COLD_PROTECTION) is None
    assert all(b.low_m <= b.high_m for b in band)


def test_days_as_a_list_and_days_before_transplanting_left_out():
    band = daily_band(transplanted_on=T, heading=H,
                      days=[date(2025, 5, 19), date(2025, 7, 20), date(2025, 5, 20)])
    assert [b.day for b in band] == [date(2025, 5, 20), date(2025, 7, 20)]


def test_without_preconditioning_panicle_initiation_keeps_4_to_6_cm():
    b = band_on(date(2025, 7, 11), preconditioning=False)
    assert b.phase is Phase.PANICLE_INITIATION and (b.low_m, b.high_m) == (0.04, 0.06)
    assert band_on(date(2025, 7, 20), preconditioning=False).phase is Phase.MEIOSIS


def test_a_later_heading_estimate_moves_the_band():
    later = date(2025, 8, 8)
    band = daily_band(transplanted_on=T, heading=later, days=SEASON)
    assert phase_days(band, Phase.MIDSEASON_DRAINAGE) == (date(2025, 6, 29), date(2025, 7, 4))
    assert phase_days(band, Phase.MEIOSIS) == (date(2025, 7, 23), date(2025, 8, 1))
    assert phase_days(band, Phase.AFTER_HEADING)[0] == later
    assert phase_days(band, Phase.FINAL_DRAINAGE)[0] == date(2025, 9, 7)


def test_cold_days_deepen_the_band_from_the_day_before():
    cold = {date(2025, 7, 15): 19.0, date(2025, 7, 24): 16.5}
    band = {b.day: b for b in daily_band(transplanted_on=T, heading=H, days=SEASON,
                                         cold_days=cold)}
    for day in (date(2025, 7, 14), date(2025, 7, 15)):
        assert band[day].phase is Phase.COLD_PROTECTION
        assert (band[day].low_m, band[day].high_m) == (0.10, 0.12)
    assert band[date(2025, 7, 16)].phase is Phase.PRECONDITIONING
    for day in (date(2025, 7, 23), date(2025, 7, 24)):
        assert band[day].phase is Phase.COLD_PROTECTION
        assert (band[day].low_m, band[day].high_m) == (0.15, 0.17)
        assert "16.5" in band[day].source
    assert band[date(2025, 7, 25)].phase is Phase.MEIOSIS


@pytest.mark.parametrize(("tmean", "deep_cm"), [
    (20.0, 10), (20.1, None), (17.0, 15), (17.1, 10), (float("nan"), None)])
def test_cold_thresholds_are_inclusive(tmean, deep_cm):
    b = band_on(date(2025, 7, 12), cold_days={date(2025, 7, 12): tmean})
    if deep_cm is None:
        assert b.phase is Phase.PRECONDITIONING
    else:
        assert b.phase is Phase.COLD_PROTECTION and round(b.low_m * 100) == deep_cm


def test_cold_days_outside_the_cold_window_do_not_deepen():
    cold = {date(2025, 7, 9): 15.0, date(2025, 7, 10): 15.0,  # before preconditioning
            date(2025, 8, 5): 15.0, date(2025, 8, 6): 15.0}  # after heading
    assert band_on(date(2025, 7, 9), cold_days=cold).phase is Phase.INTERMITTENT
    # 10 Jul is the day before the cold window: its own cold does not count there
    assert band_on(date(2025, 7, 10), cold_days=cold).phase is Phase.INTERMITTENT
    assert band_on(date(2025, 8, 5), cold_days=cold).phase is Phase.AFTER_HEADING
    # ... but the last day before heading prepares for the cold on heading day
    assert band_on(date(2025, 8, 4), cold_days=cold).phase is Phase.COLD_PROTECTION


def test_a_cold_day_after_transplanting_gets_aomori_cold_depth():
    b = band_on(date(2025, 5, 22), cold_days={date(2025, 5, 23): 12.0})
    assert b.phase is Phase.AFTER_TRANSPLANTING and (b.low_m, b.high_m) == (0.04, 0.05)
    assert band_on(date(2025, 5, 22), cold_days={date(2025, 5, 22): 15.0}).low_m == 0.02


def test_a_later_final_drainage_and_refusals():
    assert band_on(date(2025, 9, 4), final_drain_after_days=35).phase \
        is Phase.INTERMITTENT_RIPENING
    assert band_on(date(2025, 9, 9), final_drain_after_days=35).phase is Phase.FINAL_DRAINAGE
    with pytest.raises(WaterBandError, match="at least 30"):
        band_on(date(2025, 9, 4), final_drain_after_days=20)
    with pytest.raises(WaterBandError, match="not after transplanting"):
        daily_band(transplanted_on=T, heading=T, days=SEASON)
    with pytest.raises(WaterBandError, match="ends before it starts"):
        daily_band(transplanted_on=T, heading=H, days=(H, T))


# --- compare ---------------------------------------------------------------------------

def local(day: date, hour: int = 0, minute: int = 0) -> pd.Timestamp:
    return pd.Timestamp(day, tz=TZ) + pd.Timedelta(hours=hour, minutes=minute)


def series(start: pd.Timestamp, end: pd.Timestamp, value: float, step_min: int = 10
           ) -> pd.Series:
    index = pd.date_range(start, end, freq=f"{step_min}min", inclusive="left")
    return pd.Series(value, index=index.tz_convert("UTC"))


D1, D2, D3 = date(2025, 6, 1), date(2025, 6, 2), date(2025, 6, 3)
TILLERING = daily_band(transplanted_on=T, heading=H, days=(D1, D3))  # 2-4 cm


def test_inside_all_day():
    level = series(local(D1), local(D3, 12), 0.03)
    status = compare(TILLERING, level, as_of=local(D3, 12).to_pydatetime())
    assert [(d.day, d.hours_inside, d.hours) for d in status.days] == [
        (D1, 24, 24), (D2, 24, 24), (D3, 12, 12)]
    assert status.days[0].share_inside == 1.0 and status.share_inside == 1.0
    assert status.state is LevelState.INSIDE and status.off_target_since is None
    assert status.off_target_hours == 0.0 and status.latest_level_m == 0.03
    assert status.latest_at == local(D3, 11, 50).to_pydatetime()
    assert status.target.phase is Phase.TILLERING


def test_below_for_30_hours():
    level = pd.concat([series(local(D1), local(D2, 4), 0.03),
                       series(local(D2, 4), local(D3, 10), 0.0)])
    status = compare(TILLERING, level, as_of=local(D3, 10).to_pydatetime())
    assert status.state is LevelState.BELOW
    assert status.off_target_since == local(D2, 4).to_pydatetime()
    assert status.off_target_hours == pytest.approx(30.0)
    d2, d3 = status.days[1], status.days[2]
    assert (d2.hours_inside, d2.hours_below, d2.hours_above, d2.hours_no_data) == (4, 20, 0, 0)
    assert (d3.hours_below, d3.hours) == (10, 10)
    assert d2.share_inside == pytest.approx(4 / 24)


def test_a_level_within_the_tolerance_is_inside_and_above_is_above():
    level = pd.concat([series(local(D1), local(D1, 12), 0.049),
                       series(local(D1, 12), local(D2), 0.08)])
    status = compare(TILLERING, level, as_of=local(D2).to_pydatetime())
    assert (status.days[0].hours_inside, status.days[0].hours_above) == (12, 12)
    assert status.state is LevelState.ABOVE and status.off_target_hours == pytest.approx(12.0)
    strict = compare(TILLERING, level, as_of=local(D2).to_pydatetime(), tolerance_m=0.0)
    assert strict.days[0].hours_above == 24


def test_a_gap_is_no_data_not_inside():
    level = series(local(D1), local(D2, 12), 0.03)  # last reading 11:50 on D2
    status = compare(TILLERING, level, as_of=local(D3).to_pydatetime())
    d2 = status.days[1]
    # 12:00-13:00 still stands on the 11:50 reading (70 min old at 13:00); 13:00 on has none
    assert STALE_AFTER_S == 7200
    assert (d2.hours_inside, d2.hours_no_data) == (13, 11)
    assert status.state is LevelState.NO_DATA
    assert status.latest_level_m == 0.03 and status.latest_at == local(D2, 11, 50)
    empty = compare(TILLERING, level.iloc[:0], as_of=local(D2).to_pydatetime())
    assert empty.state is LevelState.NO_DATA and empty.latest_at is None
    assert [d.hours_no_data for d in empty.days] == [24]


def test_an_hourly_sensor_with_jitter_has_no_empty_hours():
    times = [local(D1, h, 59 if h % 2 else 1) for h in range(24)] + [local(D2, 0, 1)]
    level = pd.Series(0.03, index=pd.DatetimeIndex(times))
    status = compare(TILLERING, level, as_of=local(D2, 1).to_pydatetime())
    assert status.days[0].hours_inside == 24


def test_a_gap_breaks_the_off_target_run():
    level = pd.concat([series(local(D1), local(D1, 6), 0.0),
                       series(local(D1, 10), local(D2), 0.0)])  # 4 h without readings
    status = compare(TILLERING, level, as_of=local(D2).to_pydatetime())
    assert status.off_target_since == local(D1, 10).to_pydatetime()
    assert status.off_target_hours == pytest.approx(14.0)


def test_days_are_asia_tokyo_days_split_at_15_utc():
    a, b = date(2025, 7, 1), date(2025, 7, 2)
    band = [BandDay(a, 0.02, 0.04, Phase.TILLERING, "test"),
            BandDay(b, 0.10, 0.12, Phase.MEIOSIS, "test")]
    utc = UTC
    boundary = pd.Timestamp(datetime(2025, 7, 1, 15, 0, tzinfo=utc))  # 2 Jul 00:00 in Tokyo
    index = pd.date_range(boundary - pd.Timedelta(days=1), boundary + pd.Timedelta(days=1),
                          freq="10min", inclusive="left")
    level = pd.Series(np.where(index < boundary, 0.03, 0.11), index=index)
    status = compare(band, level, as_of=datetime(2025, 7, 2, 15, 0, tzinfo=utc))
    assert [(d.day, d.hours_inside, d.hours) for d in status.days] == [(a, 24, 24), (b, 24, 24)]
    # one hour early: the last UTC-day hour of 1 Jul is the first Tokyo hour of 2 Jul
    shifted = pd.Series(np.where(index < boundary - pd.Timedelta(hours=1), 0.03, 0.11),
                        index=index)
    late = compare(band, shifted, as_of=datetime(2025, 7, 2, 15, 0, tzinfo=utc))
    assert (late.days[0].hours_inside, late.days[0].hours_above) == (23, 1)


def test_readings_after_as_of_are_ignored_for_a_replay():
    level = pd.concat([series(local(D1), local(D2), 0.03), series(local(D2), local(D3), 0.0)])
    status = compare(TILLERING, level, as_of=local(D1, 23, 55).to_pydatetime())
    assert status.state is LevelState.INSIDE and len(status.days) == 1
    assert status.latest_at == local(D1, 23, 50) and status.days[0].hours == 23
    at_midnight = compare(TILLERING, level, as_of=local(D2).to_pydatetime())
    assert at_midnight.state is LevelState.BELOW and at_midnight.latest_at == local(D2)


def test_past_the_band_there_is_no_target():
    level = series(local(D1), local(D3, 12), 0.03)
    status = compare(TILLERING[:1], level, as_of=local(D3, 12).to_pydatetime())
    assert status.state is LevelState.NO_TARGET and status.target is None


def test_hostile_input():
    naive = pd.Series([0.03], index=pd.DatetimeIndex([datetime(2025, 6, 1, 10)]))
    with pytest.raises(WaterBandError, match="time-zone-aware"):
        compare(TILLERING, naive, as_of=local(D2).to_pydatetime())
    with pytest.raises(WaterBandError, match="time-zone-aware"):
        compare(TILLERING, series(local(D1), local(D2), 0.03), as_of=datetime(2025, 6, 2))
    with pytest.raises(WaterBandError, match="time-zone-aware"):
        compare(TILLERING, pd.Series([0.03, 0.04]), as_of=local(D2).to_pydatetime())
    junk = series(local(D1), local(D2), 0.03).astype(object)
    junk.iloc[::2] = "not a number"
    junk.iloc[1] = float("inf")
    status = compare(TILLERING, junk, as_of=local(D2).to_pydatetime())
    assert status.days[0].hours_inside == 24
    assert status.state is LevelState.INSIDE


def test_a_season_of_ten_minute_readings_is_fast():
    band = daily_band(transplanted_on=T, heading=H, days=SEASON)
    level = series(local(T), local(SEASON[1], 12), 0.03)
    status = compare(band, level, as_of=local(SEASON[1], 12).to_pydatetime())
    assert len(status.days) == len(band)
    assert status.days[0].hours_above == 0 and status.days[0].hours_inside == 24
    assert status.state is LevelState.ABOVE  # a flooded paddy after final drainage
    assert status.off_target_since == local(date(2025, 9, 4)).to_pydatetime()
