"""Advice rules: each fires on its condition and stays silent otherwise; one
draft per topic, municipality and day with stable keys; texts say what to do
with the numbers filled in."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from agri.analytics.advice import (
    AdviceError,
    AdviceKind,
    DeviceIssue,
    FieldState,
    Severity,
    advise,
    advisory_key,
)
from agri.analytics.blast import BlastRisk
from agri.analytics.water_band import compare, daily_band
from agri.clock import TZ

T = date(2025, 5, 20)
H = date(2025, 8, 5)  # meiosis 20-29 Jul, mid-season drainage 26 Jun - 1 Jul


def state(as_of: date, **kw) -> FieldState:
    return FieldState(**{"field_id": "f1", "municipality": "Hirosaki",
                         "cultivar": "seiten-no-hekireki", "as_of": as_of,
                         "transplanted_on": T, "heading": H, **kw})


def kinds(states, kind: AdviceKind):
    return [a for a in advise(states) if a.kind is kind]


def one(states, kind: AdviceKind):
    found = kinds(states, kind)
    assert len(found) == 1, [a.kind for a in advise(states)]
    return found[0]


def forecast(first: date, temps: list[float]) -> dict[date, float]:
    return {first + timedelta(days=i): t for i, t in enumerate(temps)}


# --- cold ---------------------------------------------------------------------------------

def test_cold_advice_in_a_cool_spell_before_the_sensitive_period():
    s = state(date(2025, 7, 12), forecast_tmean_c=forecast(date(2025, 7, 13), [19.5, 18.5, 21]),
              recent_tmean_c=19.2)
    a = one([s], AdviceKind.COLD_DAMAGE)
    assert a.severity is Severity.WARNING and a.reason == "cold-before-sensitive-period"
    assert a.body_ja.startswith("水深を10cm以上に深くしてください（冷害対策）")
    for text in ("7月14日", "18.5℃", "19.2℃", "7月20日", "8月5日"):
        assert text in a.body_ja
    for text in ("10 cm", "18.5 °C on 14 Jul", "19.2 °C", "20 Jul", "5 Aug"):
        assert text in a.body_en
    e = a.evidence["fields"]["f1"]
    assert e["coldest_forecast_day"] == "2025-07-14" and e["depth_min_m"] == 0.10
    assert (a.valid_from, a.valid_until) == (date(2025, 7, 12), date(2025, 7, 29))


def test_severe_cold_calls_for_15_cm_and_is_urgent():
    s = state(date(2025, 7, 12), forecast_tmean_c=forecast(date(2025, 7, 13), [16.8]))
    a = one([s], AdviceKind.COLD_DAMAGE)
    assert a.severity is Severity.URGENT and a.reason.startswith("severe-cold")
    assert "水深を15cm以上" in a.body_ja and "17℃以下" in a.body_ja and "16.8℃" in a.body_ja


def test_cold_in_the_sensitive_period_is_urgent_and_reports_sterility():
    s = state(date(2025, 7, 22), recent_tmean_c=19.0, cold_q_cday=24.0,
              cold_sterility_pct=12.3)
    a = one([s], AdviceKind.COLD_DAMAGE)
    assert a.severity is Severity.URGENT and a.reason == "cold-in-sensitive-period"
    assert "7月29日まで" in a.body_ja and "12%" in a.body_ja and "19.0℃" in a.body_ja


@pytest.mark.parametrize(("as_of", "recent", "temps", "why"), [
    (date(2025, 7, 12), 23.5, [24.0, 25.1], "a hot spell"),
    (date(2025, 7, 12), 20.1, [20.2], "just above the threshold"),
    (date(2025, 7, 10), 18.0, [18.0], "more than 9 days before the sensitive period"),
    (date(2025, 7, 30), 18.0, [18.0], "after the sensitive period"),
    (date(2025, 8, 10), 16.0, [16.0], "after heading"),
    (date(2025, 7, 28), 22.0, [22.0, 22.0, 15.0], "cold only after the period's end"),
])
def test_no_cold_advice(as_of, recent, temps, why):
    s = state(as_of, recent_tmean_c=recent, forecast_tmean_c=forecast(as_of, temps))
    assert not kinds([s], AdviceKind.COLD_DAMAGE), why


def test_cold_advice_days_over_a_whole_cool_season():
    raised = [day for day in pd.date_range("2025-05-20", "2025-09-30").date
              if kinds([state(day, recent_tmean_c=18.0)], AdviceKind.COLD_DAMAGE)]
    assert (raised[0], raised[-1], len(raised)) == (date(2025, 7, 11), date(2025, 7, 29), 19)


def test_the_callers_sensitive_period_is_used_when_given():
    s = state(date(2025, 7, 12), recent_tmean_c=18.0, days_to_sensitive_start=12,
              days_to_sensitive_end=25)
    assert not kinds([s], AdviceKind.COLD_DAMAGE)
    s = replace(s, days_to_sensitive_start=-2, heading=None)
    assert one([s], AdviceKind.COLD_DAMAGE).reason == "cold-in-sensitive-period"


# --- heat ---------------------------------------------------------------------------------

def test_heat_chalky_grain_after_heading():
    a = one([state(date(2025, 8, 10), post_heading_mean_c=26.4)], AdviceKind.HEAT_DAMAGE)
    assert a.severity is Severity.WARNING and a.reason == "chalky-grain-risk"
    for text in ("26.4℃", "白未熟粒", "30日", "9月4日"):
        assert text in a.body_ja
    assert "4 Sep" in a.body_en and "26.4 °C" in a.body_en
    assert a.valid_until == date(2025, 9, 4)
    hot = one([state(date(2025, 8, 10), post_heading_mean_c=27.3)], AdviceKind.HEAT_DAMAGE)
    assert hot.severity is Severity.URGENT


def test_heat_sterility_alone_fires():
    a = one([state(date(2025, 8, 6), post_heading_mean_c=24.0, heat_sterility_pct=18.0)],
            AdviceKind.HEAT_DAMAGE)
    assert a.reason == "heat-sterility-risk" and "18%" in a.body_ja


@pytest.mark.parametrize(("as_of", "mean", "sterility"), [
    (date(2025, 8, 10), 25.9, 3.0),   # below 26 C
    (date(2025, 8, 1), 27.5, None),   # before heading
    (date(2025, 9, 4), 27.5, None),   # 30 days after heading
])
def test_no_heat_advice(as_of, mean, sterility):
    s = state(as_of, post_heading_mean_c=mean, heat_sterility_pct=sterility)
    assert not kinds([s], AdviceKind.HEAT_DAMAGE)


# --- blast --------------------------------------------------------------------------------

def test_blast_scouting_7_to_10_days_after_a_favourable_day():
    s = state(date(2025, 7, 11), blast_risk=BlastRisk.FAVOURABLE, blast_day=date(2025, 7, 10))
    a = one([s], AdviceKind.BLAST)
    assert a.severity is Severity.WARNING and a.valid_from == date(2025, 7, 10)
    assert "7月10日" in a.body_ja and "7月17日～7月20日" in a.body_ja and "防除" in a.body_ja
    assert "from 17 Jul to 20 Jul" in a.body_en
    assert a.valid_until == date(2025, 7, 20)
    later = one([replace(s, as_of=date(2025, 7, 15))], AdviceKind.BLAST)
    assert advisory_key(later) == advisory_key(a)
    assert not kinds([replace(s, as_of=date(2025, 7, 21))], AdviceKind.BLAST)
    assert not kinds([replace(s, blast_risk=BlastRisk.NOT_FAVOURABLE)], AdviceKind.BLAST)
    assert not kinds([replace(s, blast_day=date(2025, 5, 10),
                              as_of=date(2025, 5, 11))], AdviceKind.BLAST)


def test_blast_sub_favourable_is_info_and_mixed_classes_are_counted():
    sub = state(date(2025, 7, 11), blast_risk=BlastRisk.SUB_FAVOURABLE,
                blast_day=date(2025, 7, 10))
    a = one([sub], AdviceKind.BLAST)
    assert a.severity is Severity.INFO and "準好適日" in a.body_ja
    fav = replace(sub, field_id="f2", blast_risk=BlastRisk.FAVOURABLE)
    both = one([sub, fav], AdviceKind.BLAST)
    assert both.severity is Severity.WARNING and "好適 1圃場、準好適 1圃場" in both.body_ja


# --- harvest ------------------------------------------------------------------------------

def test_harvest_window_soon_open_and_closed():
    s = state(date(2025, 9, 10), harvest_opens=date(2025, 9, 15),
              harvest_closes=date(2025, 9, 25))
    soon = one([s], AdviceKind.HARVEST_SOON)
    assert "9月15日" in soon.body_ja and "15 Sep" in soon.body_en
    assert not kinds([replace(s, as_of=date(2025, 9, 1))], AdviceKind.HARVEST_SOON)
    opened = one([replace(s, as_of=date(2025, 9, 15))], AdviceKind.HARVEST_OPEN)
    assert "9月15日から" in opened.body_ja and "9月25日" in opened.body_ja
    assert opened.valid_until == date(2025, 9, 25) and "closes on 25 Sep" in opened.body_en
    late = advise([replace(s, as_of=date(2025, 9, 26))])
    assert not [a for a in late if a.kind in (AdviceKind.HARVEST_SOON, AdviceKind.HARVEST_OPEN)]


# --- water --------------------------------------------------------------------------------

def _status(day: date, level_m: float, hours_off: int, as_of_hour: int = 12):
    band = daily_band(transplanted_on=T, heading=H, days=(day - timedelta(days=3), day))
    as_of = pd.Timestamp(day, tz=TZ) + pd.Timedelta(hours=as_of_hour)
    index = pd.date_range(as_of - pd.Timedelta(days=3), as_of, freq="10min")
    target = band[-1]
    good = (target.low_m + target.high_m) / 2 if target.high_m > 0 else -0.05
    values = [level_m if t > as_of - pd.Timedelta(hours=hours_off) else good for t in index]
    return compare(band, pd.Series(values, index=index), as_of=as_of.to_pydatetime())


def test_water_below_its_band_for_30_hours_in_meiosis_is_urgent():
    day = date(2025, 7, 22)
    a = one([state(day, water=_status(day, 0.05, 30))], AdviceKind.WATER_BELOW)
    assert a.severity is Severity.URGENT
    for text in ("10～12cm", "30時間", "5.0cm", "7月22日 12:00", "入水"):
        assert text in a.body_ja
    assert "30 hours" in a.body_en
    assert a.evidence["fields"]["f1"]["off_target_hours"] == pytest.approx(30.0, abs=0.2)


def test_short_excursions_and_inside_give_no_water_advice():
    day = date(2025, 7, 22)
    for status in (_status(day, 0.05, 10), _status(day, 0.11, 30)):
        found = advise([state(day, water=status)])
        assert not [a for a in found if a.kind in (AdviceKind.WATER_BELOW,
                                                   AdviceKind.WATER_ABOVE)]


def test_water_left_on_after_final_drainage_is_above():
    day = date(2025, 9, 10)
    a = one([state(day, water=_status(day, 0.05, 48))], AdviceKind.WATER_ABOVE)
    assert a.severity is Severity.WARNING and "落水の時期" in a.body_ja and "48時間" in a.body_ja
    assert "排水してください" in a.body_ja
    intermittent = one([state(date(2025, 7, 3), water=_status(date(2025, 7, 3), 0.09, 48))],
                       AdviceKind.WATER_ABOVE)
    assert "間断かん水 0～6cm" in intermittent.body_ja and "9.0cm" in intermittent.body_ja


# --- mid-season drainage ------------------------------------------------------------------

def test_midseason_drainage_soon_and_due():
    soon = one([state(date(2025, 6, 23))], AdviceKind.MIDSEASON_DRAINAGE)
    assert soon.severity is Severity.INFO and soon.title_ja == "中干しの準備"
    for text in ("6月26日", "7月1日", "8月5日", "40～35日前"):
        assert text in soon.body_ja
    assert not kinds([state(date(2025, 6, 22))], AdviceKind.MIDSEASON_DRAINAGE)
    due = one([state(date(2025, 6, 27))], AdviceKind.MIDSEASON_DRAINAGE)
    assert due.title_ja == "中干しの時期です"
    flooded = _status(date(2025, 6, 28), 0.04, 30)
    a = one([state(date(2025, 6, 28), water=flooded)], AdviceKind.MIDSEASON_DRAINAGE)
    assert a.severity is Severity.WARNING
    assert not kinds([state(date(2025, 6, 28), water=flooded)], AdviceKind.WATER_ABOVE)
    drained = _status(date(2025, 6, 28), -0.05, 30)
    assert not kinds([state(date(2025, 6, 28), water=drained)], AdviceKind.MIDSEASON_DRAINAGE)
    assert not kinds([state(date(2025, 7, 2))], AdviceKind.MIDSEASON_DRAINAGE)
    assert not kinds([state(date(2025, 6, 27), heading_observed=True)],
                     AdviceKind.MIDSEASON_DRAINAGE)


# --- sensors ------------------------------------------------------------------------------

def test_sensor_may_be_broken():
    s = state(date(2025, 6, 10), device_issues=(DeviceIssue("pw-001", "stuck"),
                                                DeviceIssue("pw-002", "dead")))
    a = one([s], AdviceKind.SENSOR_CHECK)
    assert "pw-001（値が変わらない）" in a.body_ja and "2台" in a.body_ja
    assert "pw-002 (dead)" in a.body_en
    assert not kinds([state(date(2025, 6, 10))], AdviceKind.SENSOR_CHECK)


def test_a_silent_water_sensor_gets_checked_after_a_day():
    band = daily_band(transplanted_on=T, heading=H, days=(date(2025, 6, 8), date(2025, 6, 10)))
    index = pd.date_range(pd.Timestamp("2025-06-08", tz=TZ), periods=6 * 12, freq="10min")
    level = pd.Series(0.03, index=index)  # 00:00 to 11:50 on 8 Jun
    silent = compare(band, level, as_of=datetime(2025, 6, 9, 18, tzinfo=TZ))
    a = one([state(date(2025, 6, 9), water=silent)], AdviceKind.SENSOR_CHECK)
    assert a.reason == "no-water-data" and "30時間" in a.body_ja
    recent = compare(band, level, as_of=datetime(2025, 6, 8, 16, tzinfo=TZ))
    assert not kinds([state(date(2025, 6, 8), water=recent)], AdviceKind.SENSOR_CHECK)


# --- grouping, keys, input ----------------------------------------------------------------

def test_one_draft_per_topic_and_municipality():
    cold = {"recent_tmean_c": 19.0, "forecast_tmean_c": forecast(date(2025, 7, 13), [18.2])}
    states = ([state(date(2025, 7, 12), field_id=f"h{i}", **cold) for i in range(5)]
              + [state(date(2025, 7, 12), field_id=f"g{i}", municipality="Goshogawara",
                       **cold) for i in range(3)]
              + [state(date(2025, 7, 12), field_id="warm", recent_tmean_c=23.0)])
    found = kinds(states, AdviceKind.COLD_DAMAGE)
    assert [(a.municipality, a.field_ids) for a in found] == [
        ("Goshogawara", ("g0", "g1", "g2")), ("Hirosaki", ("h0", "h1", "h2", "h3", "h4"))]
    assert "対象 5圃場" in found[1].body_ja and "5 fields" in found[1].body_en
    assert sorted(found[1].evidence["fields"]) == ["h0", "h1", "h2", "h3", "h4"]
    json.dumps([a.evidence for a in advise(states)])  # evidence is plain JSON


def test_the_most_severe_field_sets_the_draft():
    calm = state(date(2025, 7, 12), field_id="a", recent_tmean_c=19.5)
    severe = state(date(2025, 7, 12), field_id="b",
                   forecast_tmean_c=forecast(date(2025, 7, 14), [16.0]))
    a = one([calm, severe], AdviceKind.COLD_DAMAGE)
    assert a.severity is Severity.URGENT and "15cm" in a.body_ja and a.field_ids == ("a", "b")
    assert a.evidence["fields"]["a"]["severity"] == "warning"


def test_keys_are_stable_across_reruns_and_unique():
    day = date(2025, 7, 12)
    states = [state(day, field_id=f"f{i}", recent_tmean_c=19.0, blast_day=date(2025, 7, 10),
                    blast_risk=BlastRisk.FAVOURABLE) for i in range(3)]
    first = {advisory_key(a): a for a in advise(states)}
    colder = [replace(s, recent_tmean_c=18.1) for s in states]
    again = {advisory_key(a): a for a in advise(colder)}
    assert set(first) == set(again) and len(first) == len(advise(states))
    key = f"cold-damage:Hirosaki:{day.isoformat()}"
    assert "18.1℃" in again[key].body_ja and "19.0℃" in first[key].body_ja
    assert f"blast:Hirosaki:{date(2025, 7, 10).isoformat()}" in first


def test_refused_input():
    s = state(date(2025, 7, 12))
    with pytest.raises(AdviceError, match="twice"):
        advise([s, s])
    with pytest.raises(AdviceError, match="local date"):
        advise([replace(s, as_of=datetime(2025, 7, 12, 9))])
    assert advise([]) == []
    bad = replace(s, heading=date(2025, 5, 1), forecast_tmean_c={date(2025, 7, 13): float("nan")})
    assert advise([bad]) == []
