"""The alert rules in one place: each rule's name, severity, when it runs
(on every batch of new readings, or on the schedule) and its thresholds.

``alerts.key`` names one condition: the rule, its subject (a field or a
device) and, where a rule can hold several conditions at once, what tells
them apart (an advisory, a day)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from agri.api.queries import conditions, device_health

SEVERITIES = ("info", "warning", "urgent")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    severity: str  # for advisory-published: the advisory's own
    on_readings: bool  # evaluated on every batch of new readings; else on the schedule
    subject: str  # "field" or "device": what the page link names


WATER_OUT_OF_BAND = Rule("water-out-of-band", "warning", True, "field")
WATER_GONE = Rule("water-gone", "urgent", True, "field")
BATTERY_LOW = Rule("battery-low", "warning", True, "device")
GATE_NOT_ANSWERING = Rule("gate-not-answering", "urgent", False, "device")
GATE_NOT_MOVING = Rule("gate-not-moving", "warning", False, "device")
SENSOR_SILENT = Rule("sensor-silent", "warning", False, "device")
COLD_AHEAD = Rule("cold-ahead", "urgent", False, "field")
BLAST_DAY = Rule("blast-day", "warning", False, "field")
HARVEST_WINDOW = Rule("harvest-window", "info", False, "field")
ADVISORY_PUBLISHED = Rule("advisory-published", "info", False, "field")

RULES = {r.name: r for r in (WATER_OUT_OF_BAND, WATER_GONE, BATTERY_LOW, GATE_NOT_ANSWERING,
                             GATE_NOT_MOVING, SENSOR_SILENT, COLD_AHEAD, BLAST_DAY,
                             HARVEST_WINDOW, ADVISORY_PUBLISHED)}

# --- Water -----------------------------------------------------------------------------
PADDY_PROFILE = "paddy-water"  # the field's water sensor
WATER_LEVEL = "water_level"  # metres above the soil surface
OUT_OF_BAND_FOR = timedelta(hours=3)  # outside the day's band continuously longer than this
OUT_OF_BAND_LOOKBACK = timedelta(days=1)  # how far back the start of a run is looked for
SOIL_SURFACE_M = 0.0  # at or below it the paddy has no standing water

# --- Gates -----------------------------------------------------------------------------
GATE_PROFILE = "water-gate"
GATE_POSITION = "gate_position"  # percent open
SET_GATE = "set_gate"
GATE_MISMATCH_POINTS = 10.0  # reported position this far from the commanded one ...
GATE_MISMATCH_FOR = timedelta(minutes=30)  # ... for longer than this
LEVEL_RISE_M = 0.005  # the level rose by less than this while the supply gate stayed open
COMMAND_FAILED = ("expired", "rejected")
COMMAND_ANSWERED = ("accepted", "done")

# --- Devices (the device pages' own thresholds: api/queries/device_health.py) ----------
SILENT_INTERVALS = device_health.SILENT_INTERVALS
SILENT_AT_LEAST = timedelta(hours=2)
BATTERY_LOW_PCT = conditions.BATTERY_LOW_PCT
BATTERY_EMPTY_WITHIN_DAYS = device_health.BATTERY_EMPTY_WITHIN_DAYS

# --- Analytics -------------------------------------------------------------------------
COLD_ADVISORY_KIND = "cold-damage"  # drafted only in the cold-sensitive period
BLAST_FAVOURABLE = "favourable"
BLAST_DAYS_BACK = 1  # last night's class counts today

# --- Evidence --------------------------------------------------------------------------
EVIDENCE_MAX_CHARS = 3000  # the table refuses more than 4000
TEXT_MAX_CHARS = 200  # any text taken into evidence from elsewhere (reasons, titles)


def silent_after(min_interval_s: int) -> timedelta:
    """A device heard before is silent when not heard for this long."""
    return max(timedelta(seconds=SILENT_INTERVALS * min_interval_s), SILENT_AT_LEAST)


def key(rule: Rule, subject: str, *parts: object) -> str:
    return ":".join([rule.name, subject, *(str(p) for p in parts)])[:200]
