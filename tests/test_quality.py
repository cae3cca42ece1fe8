"""Sensor quality checks on constructed series: each check fires on its fault and not
on the flat stretches that are ordinary (a dry paddy at the sensor's floor, no rain,
no sun at night, fog, calm); hostile input (NaN, infinity, repeated times, a single
reading) is flagged or passed over, never an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agri.analytics import quality as q
from agri.analytics import solar
from agri.clock import TZ

T0 = pd.Timestamp("2025-07-01 00:00", tz=TZ).tz_convert("UTC")
HOUR = pd.Timedelta(hours=1)


def times(n: int, *, interval_s: int = 600, start: pd.Timestamp = T0) -> pd.DatetimeIndex:
    return start + pd.to_timedelta(np.arange(n) * interval_s, unit="s")


def series(values, *, interval_s: int = 600, start: pd.Timestamp = T0) -> pd.Series:
    values = np.asarray(values, dtype=float)
    return pd.Series(values, index=times(len(values), interval_s=interval_s, start=start))


def water_temp(rng: np.random.Generator, days: float = 3, *, interval_s: int = 600) -> pd.Series:
    """A paddy's water temperature: a diurnal swing, sensor noise, 2 decimals."""
    n = int(days * 86_400 / interval_s)
    hours = np.arange(n) * interval_s / 3600
    v = 22 + 4 * np.sin(2 * np.pi * (hours - 9) / 24) + rng.normal(0, 0.1, n)
    return series(np.round(v, 2), interval_s=interval_s)


def solar_radiation(rng: np.random.Generator, days: int = 3) -> pd.Series:
    """Global radiation: zero while the sun is down, noisy by day, whole W/m2."""
    idx = times(days * 144)
    local = idx.tz_convert(TZ)
    sin_h = solar.sin_elevation(latitude_deg=40.7, longitude_deg=140.4,
                                standard_meridian_deg=135.0,
                                day_of_year=local.day_of_year.to_numpy(),
                                hour=(local.hour + local.minute / 60).to_numpy())
    v = np.where(sin_h > 0, 900 * sin_h + rng.normal(0, 5, len(idx)), 0.0)
    return pd.Series(np.round(np.clip(v, 0, None)), index=idx)


def received(s: pd.Series, delay_s: float = 2.0) -> pd.Series:
    return pd.Series(s.index + pd.Timedelta(seconds=delay_s), index=s.index)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# --- range, clock, repeated times -----------------------------------------------------------

def test_range_flags_implausible_and_non_finite_values():
    s = series([0.05, 0.40, 0.05, np.nan, np.inf, 0.05, -0.25, 0.05])
    bad, flags = q.range_check(s, metric="water_level")
    assert bad.tolist() == [False, True, False, True, True, False, True, False]
    assert [(f.start, f.readings) for f in flags] == [(s.index[1], 1), (s.index[3], 2),
                                                      (s.index[6], 1)]
    # 0.40 m is physically possible (devices/profiles.py) but over a paddy's levee
    assert flags[0].detail["max"] == 0.40 and flags[0].detail["high"] == 0.35
    assert flags[1].detail["non_finite"] == 2 and flags[1].detail["min"] is None


def test_plausible_range_is_never_wider_than_the_physical_one():
    for metric in q.PLAUSIBLE:
        low, high = q.plausible_range(metric)
        spec = q.METRICS[metric]
        assert spec.low <= low < high <= spec.high
    assert q.plausible_range("soil_ec") == (0.0, 2.0)  # none tighter: the physical range


def test_clean_keeps_the_first_of_repeated_times():
    idx = times(3)
    s = pd.Series([1.0, 2.0, 3.0, 9.0], index=idx.append(idx[1:2]))
    cleaned, repeated = q.clean(s)
    assert repeated == 1 and cleaned.tolist() == [1.0, 2.0, 3.0]


def test_clock_ahead_of_reception_is_flagged():
    s = series(np.full(6, 20.0))
    rec = received(s)
    rec.iloc[2:4] = s.index[2:4] - pd.Timedelta(hours=9)  # stamped in Japan time as UTC
    bad, flags = q.clock_check(s, rec, metric="water_temp")
    assert bad.tolist() == [False, False, True, True, False, False]
    assert flags[0].readings == 2 and flags[0].detail["ahead_s"] == 9 * 3600


# --- spikes ------------------------------------------------------------------------------------

def test_spike_is_found_and_nothing_else(rng):
    s = water_temp(rng)
    s.iloc[100] += 8.0
    s.iloc[300] = 3.0  # within the plausible range, far from its neighbours
    mask = q.spike_mask(s, metric="water_temp", interval_s=600)
    assert np.flatnonzero(mask).tolist() == [100, 300]


def test_no_spike_on_smooth_data_across_an_outage_or_on_a_flat_stretch(rng):
    s = water_temp(rng, days=4)
    s = s.drop(s.index[200:320])  # a 20-hour outage: the readings around it are not outliers
    assert not q.spike_mask(s, metric="water_temp", interval_s=600).any()
    flat = series(np.full(100, 0.052))
    assert not q.spike_mask(flat, metric="water_level", interval_s=600).any()
    rain = series([0, 0, 0, 12.5, 0, 0, 0, 0, 0, 0])  # rain bursts are not spikes
    assert not q.spike_mask(rain, metric="precipitation", interval_s=600).any()


# --- stuck -------------------------------------------------------------------------------------

def test_stuck_water_temperature_is_flagged_over_its_run(rng):
    s = water_temp(rng)
    s.iloc[150:198] = 24.31  # 8 hours at one value
    flags = q.stuck_flags(s, metric="water_temp")
    assert [(f.start, f.end, f.readings) for f in flags] == [(s.index[150], s.index[197], 48)]
    assert flags[0].detail == {"value": 24.31, "why": "flat"}


def test_a_run_does_not_bridge_a_stretch_without_readings():
    evening, morning = series(np.zeros(3), interval_s=3600), series(
        np.zeros(3), interval_s=3600, start=T0 + 30 * HOUR)
    s = pd.concat([evening, morning])  # zero either side of 27 hours with nothing
    assert q.stuck_flags(s, metric="water_temp") == []
    long = pd.concat([series(np.full(30, 5.0)), series(np.full(30, 5.0), start=T0 + 10 * HOUR)])
    assert [f.readings for f in q.stuck_flags(long, metric="water_temp")] == [30, 30]


def test_short_flat_runs_and_noisy_series_are_not_stuck(rng):
    s = water_temp(rng, days=10)
    s.iloc[50:62] = 21.5  # 2 hours: shorter than STUCK_MIN_S
    assert q.stuck_flags(s, metric="water_temp") == []
    level = series(np.round(0.05 + rng.normal(0, 0.002, 1440), 3))
    assert q.stuck_flags(level, metric="water_level") == []
    battery = series(np.full(48, 87.0), interval_s=3600)  # charge falls slowly: not checked
    assert q.stuck_flags(battery, metric="battery") == []


def test_dry_paddy_at_the_sensor_floor_is_not_stuck_but_a_level_frozen_when_ponded_is(rng):
    ponded = np.round(0.04 + rng.normal(0, 0.002, 432), 3)  # 3 days flooded
    dry = np.full(720, -0.10)  # then 5 days drained, the sensor at its floor
    s = series(np.r_[ponded, dry])
    assert q.stuck_flags(s, metric="water_level") == []
    frozen = np.r_[ponded[:200], np.full(120, 0.041), ponded[320:], dry]
    flags = q.stuck_flags(series(frozen), metric="water_level")
    assert [(f.readings, f.detail["value"]) for f in flags] == [(120, 0.041)]


def test_no_rain_is_not_stuck_unless_the_peers_saw_rain():
    dry = series(np.zeros(7 * 144))
    no_rain = pd.Series(0.0, index=pd.date_range(T0, periods=7 * 24, freq="h"))
    assert q.stuck_flags(dry, metric="precipitation") == []
    assert q.stuck_flags(dry, metric="precipitation", reference=no_rain) == []
    rain = no_rain.copy()
    rain.iloc[30:42] = 0.4  # the neighbours' median: 2.4 mm/h for 12 hours
    short = series(np.zeros(72), start=T0 + 28 * HOUR)  # 12 h of zeros through their rain
    flags = q.stuck_flags(short, metric="precipitation", reference=rain)
    assert len(flags) == 1 and flags[0].detail["why"] == "peers"
    # rain in the hours where the run begins or ends is no contradiction
    edge = series(np.zeros(36), start=T0 + 41 * HOUR + pd.Timedelta(minutes=5))
    assert q.stuck_flags(edge, metric="precipitation", reference=rain) == []


def test_no_sun_at_night_is_not_stuck_but_zero_radiation_at_noon_is(rng):
    s = solar_radiation(rng)
    assert (s == 0).sum() > 100  # long flat nights
    assert q.stuck_flags(s, metric="solar_radiation") == []
    broken = s.copy()
    broken.iloc[170:230] = 0.0  # 04:20 to 14:10 on the second day
    flags = q.stuck_flags(broken, metric="solar_radiation")
    assert len(flags) == 1 and flags[0].detail["why"] == "sun"
    assert flags[0].start <= broken.index[170] and flags[0].end == broken.index[229]


def test_sunshine_through_the_night_is_stuck_full_sun_by_day_is_not():
    day = np.r_[np.zeros(6), np.full(10, 3600.0), np.zeros(8)]  # hourly, local midnight on
    s = series(np.tile(day, 3), interval_s=3600)
    assert q.stuck_flags(s, metric="sunshine_duration") == []
    night = s.copy()
    night.iloc[16:30] = 3600.0  # full sunshine from 16:00 to 06:00
    flags = q.stuck_flags(night, metric="sunshine_duration")
    assert len(flags) == 1 and flags[0].detail["why"] == "sun"


def test_a_flat_run_the_peers_share_is_the_weather_not_a_fault():
    s = series(np.r_[np.linspace(70, 84, 30), np.full(40, 85.0), np.linspace(84, 70, 30)])
    assert len(q.stuck_flags(s, metric="rel_humidity")) == 1  # alone: stuck
    peers = pd.Series(85.0, index=pd.date_range(T0, periods=24, freq="h"))
    assert q.stuck_flags(s, metric="rel_humidity", reference=peers) == []
    overcast = series(np.r_[np.full(5, 2.0), [900.0, 1800.0]], interval_s=3600,
                      start=T0 + 9 * HOUR)  # two seconds of sun an hour, all morning
    assert q.stuck_flags(overcast, metric="sunshine_duration") == []


def test_no_sunshine_while_the_peers_had_sun_is_stuck_the_night_does_not_dilute_it():
    day = np.r_[np.zeros(6), np.full(7, 300.0), np.full(5, 1200.0), np.zeros(6)]
    peers = pd.Series(np.tile(day, 2), index=pd.date_range(T0, periods=48, freq="h"))
    # sunny 5 of the 45 hours inside the run twice: a fifth of all, a third of those with sun
    s = series(np.r_[np.zeros(46), [1500.0]], interval_s=3600, start=T0 + HOUR)
    flags = q.stuck_flags(s, metric="sunshine_duration", reference=peers)
    assert len(flags) == 1 and flags[0].detail == {"value": 0.0, "why": "peers"}
    assert q.stuck_flags(s, metric="sunshine_duration") == []  # alone: an overcast spell


@pytest.mark.parametrize(("metric", "value"), [("rel_humidity", 100.0), ("wind_speed", 0.0),
                                               ("leaf_wetness", 1.0)])
def test_fog_calm_and_wet_leaves_are_not_stuck(metric, value):
    s = series(np.r_[np.linspace(80, 99, 30) if metric == "rel_humidity" else np.linspace(
        0.2, 0.9, 30), np.full(60, value)])
    assert q.stuck_flags(s, metric=metric) == []


# --- gaps and silences ---------------------------------------------------------------------

def test_gaps_count_missing_reports_and_the_longest_gap():
    idx = times(144)
    kept = idx.delete(list(range(40, 70)) + [100])
    g = q.gaps(kept, interval_s=600, start=T0, end=T0 + pd.Timedelta(days=1))
    assert (g.expected, g.received, g.missing) == (144, 113, 31)
    assert g.longest_s == 31 * 600


def test_silences_need_more_than_random_losses():
    idx = times(144)
    outage = idx.delete(range(30, 60))  # 5 hours without a reception
    (f,) = q.silences(outage, base_interval_s=600)
    assert (f.start, f.end, f.metric, f.excludes) == (idx[29], idx[60], q.DEVICE_WIDE, False)
    assert f.detail == {"hours": pytest.approx(31 / 6), "open": False}
    assert q.silences(idx.delete(range(30, 37)), base_interval_s=600) == []  # 7 lost: 80 min
    half_hourly = times(48, interval_s=1800)
    assert q.silences(half_hourly.delete(range(10, 13)), base_interval_s=1800) == []  # 3 lost
    assert len(q.silences(half_hourly.delete(range(10, 14)), base_interval_s=1800)) == 1


def test_open_silence_counts_only_while_the_others_report():
    heard = times(60)
    until = T0 + pd.Timedelta(days=1)
    (f,) = q.silences(heard, base_interval_s=600, until=until)
    assert f.detail["open"] and f.end == until
    hours = pd.date_range(T0, until, freq="h")
    reporting = pd.Series(0.95, index=hours)
    assert q.while_others_report([f], reporting) == [f]
    platform_down = reporting.where(hours < heard[-1], 0.0)  # nobody heard after it
    assert q.while_others_report([f], platform_down) == []


# --- peers and drift -------------------------------------------------------------------------

def test_peer_reference_is_the_median_of_the_others():
    idx = pd.date_range(T0, periods=3, freq="h")
    frame = pd.DataFrame({"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, np.nan],
                          "c": [3.0, 3.0, 3.0], "d": [10.0, 4.0, 4.0]}, index=idx)
    ref = q.peer_reference(frame)
    assert ref["a"].tolist()[:2] == [3.0, 3.0] and np.isnan(ref["a"].iloc[2])
    assert ref["d"].tolist()[:2] == [2.0, 2.0]


def test_peer_groups_by_municipality_when_large_enough():
    devices = {f"h{i}": ("paddy-water", "Hirosaki") for i in range(4)}
    devices |= {"k1": ("paddy-water", "Kuroishi"), "w1": ("weather-station", "Hirosaki")}
    groups = q.peer_groups(devices)
    assert groups["h0"] == ["h0", "h1", "h2", "h3"]
    assert groups["k1"] == ["h0", "h1", "h2", "h3", "k1"]
    assert groups["w1"] == ["w1"]


def _air(rng, days: int) -> tuple[pd.Series, pd.Series]:
    hours = pd.date_range(T0, periods=days * 24, freq="h")
    truth = 22 + 5 * np.sin(2 * np.pi * (np.arange(len(hours)) - 9) / 24)
    reference = pd.Series(truth + rng.normal(0, 0.05, len(hours)), index=hours)
    return pd.Series(truth + rng.normal(0, 0.1, len(hours)), index=hours), reference


def test_slow_drift_from_the_peers_is_flagged(rng):
    own, reference = _air(rng, 30)
    days = np.arange(len(own)) / 24
    drifting = own + np.where(days > 10, 0.1 * (days - 10), 0.0)  # 0.1 C a day from day 10
    (f,) = q.drift_flags(drifting, reference, metric="air_temp")
    first_day = (f.start - T0) / pd.Timedelta(days=1)
    assert 12 <= first_day <= 17 and f.end > T0 + pd.Timedelta(days=29)
    assert f.detail["departure"] > q.DRIFT_TOLERANCE["air_temp"] and f.excludes


def test_an_offset_or_noise_is_not_drift(rng):
    own, reference = _air(rng, 30)
    assert q.drift_flags(own, reference, metric="air_temp") == []
    assert q.drift_flags(own + 1.5, reference, metric="air_temp") == []  # its own site
    assert q.drift_flags(own + 1.5, reference, metric="precipitation") == []  # not checked
    assert q.drift_flags(own, None, metric="air_temp") == []


# --- anomaly and score --------------------------------------------------------------------

def _features(rng, devices: int = 8, days: int = 10) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([[f"d{i}" for i in range(devices)], range(days)],
                                       names=["device", "day"])
    data = {"water_level.gap_share": rng.uniform(0, 0.03, len(index)),
            "water_level.flat_share": rng.uniform(0.05, 0.15, len(index)),
            "water_level.residual": rng.uniform(0, 0.1, len(index))}
    return pd.DataFrame(data, index=index)


def test_anomaly_scores_are_deterministic_and_rank_an_odd_day_first(rng):
    frame = _features(rng)
    frame.loc[("d3", 4)] = [0.9, 0.98, 3.0]  # most reports missing, flat, far from the peers
    first, second = q.anomaly_scores(frame), q.anomaly_scores(frame.iloc[::-1])
    pd.testing.assert_series_equal(first, second.reindex(first.index))
    assert first.idxmax() == ("d3", 4) and first.max() > q.ANOMALY_NEUTRAL
    assert first.drop(("d3", 4)).median() < 0.55
    assert q.anomaly_scores(frame.iloc[:5]).isna().all()  # too few to compare


def test_score_and_reasons():
    assert q.day_score({"water_level": 1.0, "water_temp": 1.0, "battery": 0.0}, 0.4) == 1.0
    assert q.day_score({"water_level": 0.0, "water_temp": 1.0}, None) == 0.5
    assert q.day_score({"water_level": 1.0, "water_temp": 1.0}, 0.95) == 1 - q.ANOMALY_WEIGHT
    assert q.day_score({}, None) == 0.0
    stuck = q.Flag("water_level", q.STUCK, T0, T0 + 8 * HOUR, 48, {"value": 0.052})
    silent = q.Flag(q.DEVICE_WIDE, q.SILENT, T0 + 9 * HOUR, T0 + 20 * HOUR, 0,
                    {"hours": 11.0, "open": True})
    spikes = [q.Flag("water_temp", q.SPIKE, T0 + k * HOUR, T0 + k * HOUR, 1) for k in (1, 2)]
    gaps = {"water_temp": q.Gaps(144, 60, 84, 11 * 3600.0)}
    reasons = q.day_reasons([silent, *spikes, stuck], gaps=gaps, anomaly=0.71,
                            profile="paddy-water", battery_pct=4.0)
    texts = [r["text"] for r in reasons]
    assert texts == [
        "2 water_temp spike(s)",
        "water_level stuck at 0.052 m since 2025-07-01 00:00",
        "silent since 2025-07-01 09:00 while other devices reported",
        "water_temp: 84 of 144 expected readings missing, the longest gap 11.0 h",
        "unusual among the paddy-water devices (anomaly 0.71)",
        "battery at 4 %"]


# --- one series through every check ----------------------------------------------------------

def test_check_series_on_a_faulty_day(rng):
    s = water_temp(rng)
    s.iloc[150:198] = 24.31
    s.iloc[20] = 48.0  # physically possible, implausible in a paddy
    s.iloc[300] += 7.0
    result = q.check_series(s, received(s), metric="water_temp", interval_s=600)
    kinds = [(f.kind, f.readings) for f in result.flags]
    assert kinds == [("range", 1), ("stuck", 48), ("spike", 1)]
    assert result.days["readings"].sum() == len(s) and result.days["good"].sum() == len(s) - 50
    assert result.first == s.index[0] and result.repeated == 0


@pytest.mark.parametrize("values", [[], [21.5], [np.nan], [np.inf, -np.inf, np.nan, 20.0],
                                    [21.0, 21.0]])
def test_check_series_takes_hostile_input(values):
    s = series(values)
    result = q.check_series(s, received(s), metric="water_temp", interval_s=600)
    non_finite = sum(f.detail.get("non_finite", 0) for f in result.flags)
    assert non_finite == sum(not np.isfinite(v) for v in values)
    assert int(result.days["readings"].sum()) == len(values)


def test_check_series_with_repeated_times_and_unsorted_input(rng):
    s = water_temp(rng, days=1)
    shuffled = pd.concat([s.iloc[::-1], s.iloc[:5] + 3.0])  # reversed, then 5 repeats
    result = q.check_series(shuffled, received(shuffled), metric="water_temp", interval_s=600)
    assert result.repeated == 5 and int(result.days["readings"].sum()) == len(s)
    assert [f.kind for f in result.flags] == []
