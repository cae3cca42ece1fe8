"""What the automatic modes do with a field's gates: pure decisions from the
field's state at ``now`` (no I/O; water/control_store.py reads the state and
writes the decisions, docs/water-control.md).

Hold depth (mode ``hold``) keeps the paddy level in the day's target band
(analytics/water_band.py) with hysteresis inside it: the supply gate opens
when the level is below ``low + OPEN_BELOW_SHARE`` of the band's width and
closes when it reaches ``low + CLOSE_AT_SHARE``; between the two the gates
stay as they are. The drain opens above ``high`` and closes again at
``low + DRAIN_CLOSE_AT_SHARE``. A drained band (``high_m <= 0``) closes the
supply and opens the drain.

Schedule (mode ``schedule``) opens the supply gate inside the schedule's
local (:data:`agri.clock.TZ`) windows and closes it outside them.

Safety, before anything else:

- a person's command while the mode is automatic (the override) wins: no
  automatic command until the farmer sets a mode again;
- hold mode sends nothing while the level reading is missing, older than
  ``STALE_AFTER`` or flagged by quality control (closing a gate open past
  its ``max_open_h`` is the one exception: it is the safe direction);
- a supply gate open for ``max_open_h`` is closed, and opened again only
  after ``MAX_OPEN_REST`` (hold) or at the next schedule window (schedule);
- the drain is never opened during a published deep-water (cold-damage)
  advisory or a deep-water band phase (water_band.DEEP_WATER_PHASES), and an
  open one is closed then;
- a position already commanded is not sent again while its command is
  unanswered or done; a command the gate refused or let expire is tried
  again after ``RETRY_AFTER``, one it left unanswered for ``ANSWER_WAIT``
  at once, and a gate that reported another position after answering done
  is taken to be where it reported.

A hold-back is a decision too: it is logged once per condition (not again
while the latest log row for the same field or gate says the same).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from agri.analytics.water_band import DEEP_WATER_PHASES
from agri.clock import TZ

# -- thresholds: the one place for every number the modes use ---------------------------
OPEN_BELOW_SHARE = 0.25  # supply opens below low + this share of the band's width
CLOSE_AT_SHARE = 0.80  # supply closes at low + this share of the width ("near the top")
DRAIN_CLOSE_AT_SHARE = 0.60  # an open drain closes at low + this share of the width
STALE_AFTER = timedelta(minutes=45)  # a level reading older than this is not acted on
MAX_OPEN_REST = timedelta(hours=1)  # hold: a supply closed for max_open_h stays closed
RETRY_AFTER = timedelta(minutes=10)  # a refused or expired command is tried again after
# A command neither done nor refused this long after it was decided is taken for
# lost (a gate that hung after accepting it): the gate is where it last reported.
ANSWER_WAIT = timedelta(minutes=30)
OPEN_POSITION = 100.0  # % the automatic modes open a gate to
CLOSED_POSITION = 0.0
MAX_WINDOWS = 8  # schedule windows per field
ANSWERED_OK = ("queued", "sent", "accepted", "done")  # the gate is (getting) there
PENDING = ("queued", "sent", "accepted")
FAILED = ("rejected", "expired")

MODES = ("manual", "schedule", "hold")
AUTOMATIC = ("schedule", "hold")
ROLES = ("supply", "drain")
ACTOR = "agri-water"  # the log's actor for the automatic modes

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class Window:
    """The supply gate is open from ``open`` to ``close`` (local times; a
    window whose close is earlier than its open runs over midnight)."""

    open: time
    close: time

    def as_json(self) -> dict[str, str]:
        return {"open": self.open.strftime("%H:%M"), "close": self.close.strftime("%H:%M")}


def parse_window(text: str) -> Window:
    """``"05:00-07:00"`` as a Window (the CLI's form)."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ScheduleError(f"a schedule window is OPEN-CLOSE in local time, e.g. 05:00-07:00, "
                            f"not {text[:40]!r}")
    return parse_schedule([{"open": parts[0].strip(), "close": parts[1].strip()}])[0]


def parse_schedule(items: object) -> tuple[Window, ...]:
    """A stored or given schedule (``[{"open": "05:00", "close": "07:00"}]``)
    as Windows; raises ScheduleError naming what is wrong."""
    if not isinstance(items, list):
        raise ScheduleError('a schedule is a list of {"open": "HH:MM", "close": "HH:MM"}')
    if len(items) > MAX_WINDOWS:
        raise ScheduleError(f"a schedule has at most {MAX_WINDOWS} windows")
    windows = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"open", "close"}:
            raise ScheduleError('each schedule window is {"open": "HH:MM", "close": "HH:MM"}')
        times = []
        for key in ("open", "close"):
            value = item[key]
            m = _HHMM.fullmatch(value) if isinstance(value, str) else None
            if m is None:
                raise ScheduleError(f"{key} is a local time HH:MM (00:00 to 23:59), "
                                    f"not {str(value)[:20]!r}")
            times.append(time(int(m[1]), int(m[2])))
        if times[0] == times[1]:
            raise ScheduleError("a window's open and close times differ")
        windows.append(Window(times[0], times[1]))
    return tuple(windows)


def window_start(windows: Sequence[Window], now: datetime) -> datetime | None:
    """The local start of the window ``now`` lies in, or None outside them all."""
    local = now.astimezone(TZ)
    for w in windows:
        for days_back in (0, 1):
            day = (local - timedelta(days=days_back)).date()
            start = datetime.combine(day, w.open, tzinfo=TZ)
            end = datetime.combine(day, w.close, tzinfo=TZ)
            if end <= start:
                end += timedelta(days=1)
            if start <= local < end:
                return start
    return None


# -- the state a decision is made from ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class Gate:
    """A water gate of the field as known at ``now``. Positions in % (0 closed)."""

    device_id: str
    role: str  # supply | drain
    reported_position: float | None = None  # the gate's latest gate_position reading
    reported_at: datetime | None = None
    command_id: int | None = None  # the latest set_gate command
    commanded_position: float | None = None
    command_status: str | None = None
    commanded_at: datetime | None = None  # when it was decided (the log's judged_at)
    open_since: datetime | None = None  # first opening command since it was last closed
    max_open_closed_at: datetime | None = None  # last closed for having been open too long
    last_code: str | None = None  # reason code of the gate's latest log row

    @property
    def position(self) -> float | None:
        """Where the gate is, or is on its way to: the commanded position
        unless that command failed, or the gate reported otherwise after it was
        done (a gate that said done and did not move); else the reported one
        (None: unknown)."""
        if self.command_status in ANSWERED_OK and self.commanded_position is not None:
            if (self.command_status == "done" and self.reported_position is not None
                    and self.reported_at is not None and self.commanded_at is not None
                    and self.reported_at >= self.commanded_at):
                return self.reported_position
            return self.commanded_position
        return self.reported_position

    def where(self, now: datetime) -> float | None:
        """:attr:`position` at ``now``: a command still unanswered after
        ANSWER_WAIT does not count (the gate is where it last reported)."""
        if (self.command_status in PENDING and self.commanded_at is not None
                and now - self.commanded_at > ANSWER_WAIT):
            return self.reported_position
        return self.position


@dataclass(frozen=True, slots=True)
class FieldState:
    """A controlled field at ``now``: its mode, the day's band, the latest
    level reading (metres above the soil surface) and its gates."""

    field_id: str
    mode: str
    schedule: tuple[Window, ...] = ()
    max_open_h: float = 8.0
    override_at: datetime | None = None
    override_by: str | None = None
    low_m: float | None = None  # today's band (local day of now); None: no band
    high_m: float | None = None
    phase: str | None = None
    level_m: float | None = None
    level_at: datetime | None = None
    level_flagged: bool = False  # quality control excludes the reading or the device-day
    deep_water_advisory: bool = False  # a published cold-damage advisory reaches the field
    gates: tuple[Gate, ...] = ()
    last_code: str | None = None  # reason code of the field's latest log row (any gate)


@dataclass(frozen=True, slots=True)
class Decision:
    """A command to a gate (``position`` set) or a hold-back (``action``
    'hold-back'), with a reason code and a reason a person reads."""

    field_id: str
    device_id: str | None
    action: str  # open | close | set | hold-back
    position: float | None
    code: str
    reason: str

    @property
    def is_command(self) -> bool:
        return self.action != "hold-back"

    @property
    def log_reason(self) -> str:
        return f"{self.code}: {self.reason}"


def reason_code(log_reason: str | None) -> str | None:
    """The code of a logged reason (``"stale-level: ..."`` -> ``"stale-level"``)."""
    return log_reason.split(":", 1)[0] if log_reason else None


# -- deciding -----------------------------------------------------------------------------
def decide(field: FieldState, now: datetime) -> list[Decision]:
    """The decisions for ``field`` at ``now`` (an empty list: nothing to do)."""
    if field.mode not in AUTOMATIC:
        return []
    if field.override_at is not None:
        by = f" by {field.override_by}" if field.override_by else ""
        return _held(field, None, "override",
                     f"a person moved a gate{by} at {_local(field.override_at)}; automatic "
                     f"control waits until the mode is set again")
    supply = [g for g in field.gates if g.role == "supply"]
    drain = [g for g in field.gates if g.role == "drain"]
    if not field.gates:
        return _held(field, None, "no-gates", "the field has no water gate")
    out: list[Decision] = []
    closing = set()
    for g in supply:
        opened = g.where(now) is not None and g.where(now) > CLOSED_POSITION
        if opened and g.open_since is not None and \
                now - g.open_since >= timedelta(hours=field.max_open_h):
            out += _command(field, g, CLOSED_POSITION, "max-open",
                            f"open since {_local(g.open_since)}, longer than "
                            f"{field.max_open_h:g} h", now)
            closing.add(g.device_id)
    rest = [g for g in supply if g.device_id not in closing]
    if field.mode == "schedule":
        return out + _schedule(field, rest, now)
    return out + _hold(field, rest, drain, now)


def _schedule(field: FieldState, supply: list[Gate], now: datetime) -> list[Decision]:
    start = window_start(field.schedule, now)
    out: list[Decision] = []
    usable = _level_problem(field, now) is None
    for g in supply:
        if start is None:
            out += _command(field, g, CLOSED_POSITION, "schedule-close",
                            "outside the schedule's windows", now)
        elif g.max_open_closed_at is not None and g.max_open_closed_at >= start:
            out += _gate_held(field, g, "max-open-rest",
                              "closed for having been open too long; opens at the next window")
        elif usable and field.high_m is not None and field.level_m >= field.high_m:
            out += _command(field, g, CLOSED_POSITION, "full",
                            f"level {_cm(field.level_m)} is at or above the band's top "
                            f"{_cm(field.high_m)}", now)
        else:
            out += _command(field, g, OPEN_POSITION, "schedule-open",
                            f"schedule window from {start.strftime('%H:%M')}", now)
    return out


def _hold(field: FieldState, supply: list[Gate], drain: list[Gate],
          now: datetime) -> list[Decision]:
    if field.low_m is None or field.high_m is None:
        return _held(field, None, "no-band", "no target band for today")
    problem = _level_problem(field, now)
    if problem is not None:
        return _held(field, None, *problem)
    low, high, level = field.low_m, field.high_m, field.level_m
    assert level is not None
    width = max(high - low, 0.0)
    deep = field.deep_water_advisory or field.phase in DEEP_WATER_PHASES
    why_deep = ("a deep-water (cold-damage) advisory is published for the field"
                if field.deep_water_advisory else f"deep-water phase {field.phase}")
    seen = f"level {_cm(level)} at {_local(field.level_at)}"
    out: list[Decision] = []
    drained = high <= 0
    for g in supply:
        if drained:
            out += _command(field, g, CLOSED_POSITION, "drained-band",
                            f"today's band is drained ({field.phase})", now)
        elif level < low + OPEN_BELOW_SHARE * width:
            if g.max_open_closed_at is not None and now - g.max_open_closed_at < MAX_OPEN_REST:
                out += _gate_held(field, g, "max-open-rest",
                                  f"closed at {_local(g.max_open_closed_at)} for having been "
                                  f"open too long; rests until "
                                  f"{_local(g.max_open_closed_at + MAX_OPEN_REST)}")
            else:
                out += _command(field, g, OPEN_POSITION, "below-band",
                                f"{seen} is below {_cm(low + OPEN_BELOW_SHARE * width)} "
                                f"(band {_cm(low)} to {_cm(high)})", now)
        elif level >= low + CLOSE_AT_SHARE * width:
            out += _command(field, g, CLOSED_POSITION, "near-top",
                            f"{seen} reached {_cm(low + CLOSE_AT_SHARE * width)} "
                            f"(band {_cm(low)} to {_cm(high)})", now)
    for g in drain:
        want: float | None = None
        if drained:
            want, code, why = OPEN_POSITION, "drained-band", f"today's band is drained " \
                                                             f"({field.phase})"
        elif level > high:
            want, code, why = OPEN_POSITION, "above-band", f"{seen} is above {_cm(high)}"
        elif level <= low + DRAIN_CLOSE_AT_SHARE * width:
            want, code, why = CLOSED_POSITION, "drain-close", \
                f"{seen} is down to {_cm(low + DRAIN_CLOSE_AT_SHARE * width)}"
        if not deep:
            if want is not None:
                out += _command(field, g, want, code, why, now)
            continue
        if g.where(now) is None or g.where(now) > CLOSED_POSITION:
            out += _command(field, g, CLOSED_POSITION, "deep-water",
                            f"the drain stays closed: {why_deep}", now)
        if want == OPEN_POSITION:
            out += _gate_held(field, g, "drain-blocked",
                              f"the drain stays closed: {why_deep} ({why})")
    return out


def _level_problem(field: FieldState, now: datetime) -> tuple[str, str] | None:
    if field.level_m is None or field.level_at is None:
        return "no-level", "no water level reading from the field's paddy sensor"
    if now - field.level_at > STALE_AFTER:
        return "stale-level", (f"the latest water level reading is from "
                               f"{_local(field.level_at)}, older than "
                               f"{STALE_AFTER.total_seconds() / 60:.0f} min")
    if field.level_flagged:
        return "flagged-level", (f"quality control flags the water level reading of "
                                 f"{_local(field.level_at)}")
    return None


def _command(field: FieldState, gate: Gate, position: float, code: str, reason: str,
             now: datetime) -> list[Decision]:
    """Set ``gate`` to ``position`` unless it is (getting) there; a failed
    command for the same position is tried again only after RETRY_AFTER."""
    if gate.where(now) == position:
        return []
    if (gate.command_status in FAILED and gate.commanded_position == position
            and gate.commanded_at is not None and now - gate.commanded_at < RETRY_AFTER):
        return []
    action = "close" if position == CLOSED_POSITION else (
        "open" if position == OPEN_POSITION else "set")
    return [Decision(field.field_id, gate.device_id, action, position, code, reason)]


def _held(field: FieldState, device_id: str | None, code: str, reason: str) -> list[Decision]:
    if field.last_code == code:
        return []
    return [Decision(field.field_id, device_id, "hold-back", None, code, reason)]


def _gate_held(field: FieldState, gate: Gate, code: str, reason: str) -> list[Decision]:
    if gate.last_code == code:
        return []
    return [Decision(field.field_id, gate.device_id, "hold-back", None, code, reason)]


def _local(t: datetime | None) -> str:
    return t.astimezone(TZ).strftime("%Y-%m-%d %H:%M") if t else "?"


def _cm(metres: float) -> str:
    """A level as logged: to the tenth of a millimetre where it has one, so a
    level just under a threshold never reads as the threshold itself."""
    return f"{metres * 100:.2f}".rstrip("0").rstrip(".") + " cm"
