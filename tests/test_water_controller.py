"""The water-gate modes' pure decisions (water/controller.py): hold depth's
hysteresis, drained bands, the drain, schedule windows and every safety rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from agri.clock import TZ
from agri.water import controller as ctl
from agri.water.controller import FieldState, Gate, Window, decide

NOW = datetime(2026, 7, 20, 6, 0, tzinfo=TZ)
SUPPLY = Gate("g-supply", "supply", reported_position=0.0, reported_at=NOW)
DRAIN = Gate("g-drain", "drain", reported_position=0.0, reported_at=NOW)


def field(**kw) -> FieldState:
    base = FieldState("f1", "hold", low_m=0.02, high_m=0.04, phase="tillering",
                      level_m=0.03, level_at=NOW - timedelta(minutes=5), gates=(SUPPLY, DRAIN))
    return replace(base, **kw)


def commands(decisions) -> dict[str, float]:
    return {d.device_id: d.position for d in decisions if d.is_command}


def codes(decisions) -> list[str]:
    return [d.code for d in decisions]


def test_hold_opens_supply_low_in_the_band_closes_near_the_top_and_keeps_between():
    low = decide(field(level_m=0.023), NOW)
    assert commands(low) == {"g-supply": 100.0} and codes(low) == ["below-band"]
    assert low[0].action == "open" and "2.3 cm" in low[0].reason
    assert decide(field(level_m=0.03), NOW) == []  # inside the hysteresis: nothing
    opened = replace(SUPPLY, command_id=1, commanded_position=100.0, command_status="done",
                     open_since=NOW - timedelta(hours=1))
    assert decide(field(level_m=0.03, gates=(opened, DRAIN)), NOW) == []  # stays open
    top = decide(field(level_m=0.037, gates=(opened, DRAIN)), NOW)
    assert commands(top) == {"g-supply": 0.0} and top[0].action == "close"
    assert codes(top) == ["near-top"]


def test_drain_opens_above_the_band_and_closes_again_lower_down():
    above = decide(field(level_m=0.05), NOW)
    assert commands(above) == {"g-drain": 100.0}
    assert codes(above) == ["above-band"]
    open_drain = replace(DRAIN, command_id=2, commanded_position=100.0, command_status="done")
    assert decide(field(level_m=0.035, gates=(SUPPLY, open_drain)), NOW) == []
    down = decide(field(level_m=0.031, gates=(SUPPLY, open_drain)), NOW)
    assert commands(down) == {"g-drain": 0.0} and codes(down) == ["drain-close"]


def test_a_drained_band_closes_supply_and_opens_the_drain():
    opened = replace(SUPPLY, commanded_position=100.0, command_status="done",
                     open_since=NOW - timedelta(hours=1))
    out = decide(field(low_m=-0.3, high_m=0.0, phase="midseason-drainage", level_m=0.01,
                       gates=(opened, DRAIN)), NOW)
    assert commands(out) == {"g-supply": 0.0, "g-drain": 100.0}
    assert set(codes(out)) == {"drained-band"}


@pytest.mark.parametrize("state", [
    {"deep_water_advisory": True},
    {"phase": "cold-protection", "low_m": 0.10, "high_m": 0.12},
    {"phase": "meiosis", "low_m": 0.10, "high_m": 0.12},
])
def test_the_drain_never_opens_in_deep_water_and_an_open_one_closes(state):
    level = 0.20
    out = decide(field(level_m=level, **state), NOW)
    assert "g-drain" not in commands(out)
    assert "drain-blocked" in codes(out)
    held = next(d for d in out if d.code == "drain-blocked")
    assert held.device_id == "g-drain" and not held.is_command
    # logged once: the gate's latest log row says so already
    blocked = replace(DRAIN, last_code="drain-blocked")
    assert decide(field(level_m=level, gates=(SUPPLY, blocked), **state), NOW) == []
    open_drain = replace(DRAIN, commanded_position=100.0, command_status="done")
    mid = (field(**state).low_m + field(**state).high_m) / 2
    out = decide(field(level_m=mid, gates=(SUPPLY, open_drain), **state), NOW)
    assert commands(out) == {"g-drain": 0.0} and codes(out) == ["deep-water"]
    drained = decide(field(low_m=-0.3, high_m=0.0, phase="final-drainage", level_m=0.05,
                           deep_water_advisory=True), NOW)
    assert "g-drain" not in commands(drained)


@pytest.mark.parametrize(("state", "code"), [
    ({"level_at": NOW - ctl.STALE_AFTER - timedelta(seconds=1)}, "stale-level"),
    ({"level_flagged": True}, "flagged-level"),
    ({"level_m": None, "level_at": None}, "no-level"),
    ({"low_m": None, "high_m": None, "phase": None}, "no-band"),
])
def test_no_automatic_command_on_a_stale_flagged_or_missing_level_logged_once(state, code):
    out = decide(field(level_m=0.0, **state) if "level_m" not in state else field(**state),
                 NOW)
    assert [(d.action, d.code, d.device_id) for d in out] == [("hold-back", code, None)]
    assert decide(field(level_m=0.0, last_code=code, **state)
                  if "level_m" not in state else field(last_code=code, **state), NOW) == []


def test_a_reading_just_within_the_limit_is_used():
    out = decide(field(level_m=0.0, level_at=NOW - ctl.STALE_AFTER), NOW)
    assert commands(out) == {"g-supply": 100.0}


def test_max_open_time_closes_the_supply_even_on_a_stale_level_then_it_rests():
    opened = replace(SUPPLY, commanded_position=100.0, command_status="done",
                     open_since=NOW - timedelta(hours=8))
    out = decide(field(level_m=0.0, max_open_h=8, gates=(opened, DRAIN)), NOW)
    assert commands(out) == {"g-supply": 0.0} and codes(out) == ["max-open"]
    stale = decide(field(level_m=0.0, level_at=NOW - timedelta(hours=2), max_open_h=8,
                         gates=(opened, DRAIN)), NOW)
    assert codes(stale) == ["max-open", "stale-level"]
    closed = replace(SUPPLY, commanded_position=0.0, command_status="done",
                     max_open_closed_at=NOW - timedelta(minutes=10))
    rest = decide(field(level_m=0.0, gates=(closed, DRAIN)), NOW)
    assert commands(rest) == {} and codes(rest) == ["max-open-rest"]
    later = NOW + ctl.MAX_OPEN_REST
    assert commands(decide(field(level_m=0.0, level_at=later, gates=(closed, DRAIN)),
                           later)) == {"g-supply": 100.0}


def test_an_override_wins_until_the_mode_is_set_again():
    out = decide(field(level_m=0.0, override_at=NOW - timedelta(hours=1), override_by="sato"),
                 NOW)
    assert [(d.action, d.code) for d in out] == [("hold-back", "override")]
    assert "sato" in out[0].reason
    assert decide(field(level_m=0.0, override_at=NOW, last_code="override"), NOW) == []
    assert decide(field(level_m=0.0, mode="manual"), NOW) == []


def test_the_same_position_is_not_sent_again_while_its_command_is_open():
    for status in ("queued", "sent", "accepted", "done"):
        pending = replace(SUPPLY, command_id=5, commanded_position=100.0, command_status=status,
                          commanded_at=NOW - timedelta(minutes=1),
                          reported_at=NOW - timedelta(minutes=2))
        assert decide(field(level_m=0.0, gates=(pending, DRAIN)), NOW) == [], status
    refused = replace(SUPPLY, command_id=5, commanded_position=100.0, command_status="rejected",
                      commanded_at=NOW - timedelta(minutes=1))
    assert decide(field(level_m=0.0, gates=(refused, DRAIN)), NOW) == []
    later = NOW + ctl.RETRY_AFTER
    assert commands(decide(field(level_m=0.0, level_at=later, gates=(refused, DRAIN)),
                           later)) == {"g-supply": 100.0}


def test_a_lost_or_false_done_command_is_sent_again():
    # Accepted and never done: after ANSWER_WAIT the gate is where it reported.
    hung = replace(SUPPLY, command_id=5, commanded_position=100.0, command_status="accepted",
                   commanded_at=NOW - ctl.ANSWER_WAIT + timedelta(minutes=1),
                   reported_at=NOW - ctl.ANSWER_WAIT)
    assert decide(field(level_m=0.0, gates=(hung, DRAIN)), NOW) == []
    later = NOW + timedelta(minutes=2)
    assert commands(decide(field(level_m=0.0, level_at=later, gates=(hung, DRAIN)),
                           later)) == {"g-supply": 100.0}
    # Done, then the gate reported it had not moved: sent again.
    stayed = replace(SUPPLY, command_id=5, commanded_position=100.0, command_status="done",
                     commanded_at=NOW - timedelta(minutes=5), reported_position=0.0,
                     reported_at=NOW - timedelta(minutes=4))
    assert commands(decide(field(level_m=0.0, gates=(stayed, DRAIN)), NOW)) == {
        "g-supply": 100.0}
    moved = replace(stayed, reported_position=100.0)
    assert decide(field(level_m=0.0, gates=(moved, DRAIN)), NOW) == []


def test_schedule_opens_inside_the_local_windows_and_closes_outside():
    windows = (Window(time(5), time(7)), Window(time(22), time(1)))
    sched = field(mode="schedule", schedule=windows, level_m=None, level_at=None)
    assert commands(decide(sched, NOW)) == {"g-supply": 100.0}
    opened = replace(SUPPLY, commanded_position=100.0, command_status="done",
                     open_since=NOW - timedelta(hours=1))
    out = decide(replace(sched, gates=(opened, DRAIN)), NOW.replace(hour=7))
    assert commands(out) == {"g-supply": 0.0} and codes(out) == ["schedule-close"]
    midnight = datetime(2026, 7, 21, 0, 30, tzinfo=TZ)  # the window over midnight
    assert commands(decide(sched, midnight)) == {"g-supply": 100.0}
    utc = NOW.astimezone(UTC)
    assert commands(decide(sched, utc)) == {"g-supply": 100.0}  # local times, any tz given
    full = replace(sched, level_m=0.05, level_at=NOW)
    assert commands(decide(full, NOW)) == {}  # above the band's top: no opening
    rested = replace(SUPPLY, commanded_position=0.0, command_status="done",
                     max_open_closed_at=NOW.replace(hour=5, minute=30))
    assert codes(decide(replace(sched, gates=(rested, DRAIN)), NOW)) == ["max-open-rest"]


def test_schedules_are_checked():
    assert ctl.parse_window("05:00-07:30") == Window(time(5), time(7, 30))
    assert ctl.parse_schedule([{"open": "23:00", "close": "01:00"}])[0].as_json() == {
        "open": "23:00", "close": "01:00"}
    for bad in (["05:00"], [{"open": "5:00", "close": "07:00"}],
                [{"open": "05:00", "close": "05:00"}], [{"open": "24:00", "close": "01:00"}],
                [{"open": "05:00", "close": "07:00", "x": 1}], "05:00",
                [{"open": "05:00", "close": "07:00"}] * (ctl.MAX_WINDOWS + 1)):
        with pytest.raises(ctl.ScheduleError):
            ctl.parse_schedule(bad)
    with pytest.raises(ctl.ScheduleError):
        ctl.parse_window("05:00")


def test_no_gates_is_held_back_once():
    out = decide(field(gates=()), NOW)
    assert codes(out) == ["no-gates"]
    assert decide(field(gates=(), last_code="no-gates"), NOW) == []
