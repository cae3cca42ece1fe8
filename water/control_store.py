"""The water controller's reads and writes: every controlled field's state as
of ``now`` in three set-based queries, and the decisions written as commands
(device_commands, published by ingest's sender) and log rows
(water_control_log).

Everything is judged as of ``now``: level and gate readings with ``time <=
now``, the band of now's local day, advisories valid that day and not
withdrawn by then, so a simulated clock works as the real one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import orjson
import psycopg

from agri.analytics.quality import USABLE_SCORE
from agri.clock import TIME_ZONE
from agri.devices.profiles import PROFILES
from agri.water import controller as ctl
from agri.water.controller import Decision, FieldState, Gate

SYSTEM_USER = "agri-water"  # requested_by of the automatic modes' commands (migration 021)
COMMAND_EXPIRES = timedelta(minutes=15)  # an automatic command the gate leaves unanswered
READING_LOOKBACK = timedelta(days=7)  # older readings are not looked for at all
RECENT_LOG_ROWS = 20  # log rows per field read to know gates' recent history
LEVEL_METRIC = "water_level"
GATE_METRIC = "gate_position"
COLD_DAMAGE = "cold-damage"  # analytics/advice.py AdviceKind.COLD_DAMAGE


def gate_profiles() -> list[str]:
    """Profiles whose devices take set_gate: water gates (supply unless told)."""
    return sorted(name for name, p in PROFILES.items() if "set_gate" in p.commands)


_FIELDS = f"""
WITH day AS (SELECT (%(now)s::timestamptz AT TIME ZONE '{TIME_ZONE}')::date AS d)
SELECT w.field_id, w.mode, w.schedule, w.max_open_h, w.override_at, w.override_by,
    b.low_m, b.high_m, b.phase, lv.value, lv.time,
    lv.device_id IS NOT NULL AND (
        EXISTS (SELECT 1 FROM reading_flags q WHERE q.excludes AND q.device_id = lv.device_id
                AND q.metric IN (%(metric)s, '*') AND q.from_time <= lv.time
                AND q.to_time >= lv.time)
        OR coalesce((SELECT q.score < %(usable)s FROM device_quality q
                     WHERE q.device_id = lv.device_id AND q.computed_for <= day.d
                       AND q.computed_for >= day.d - 1
                     ORDER BY q.computed_for DESC LIMIT 1), false)),
    EXISTS (SELECT 1 FROM advisories a
            WHERE a.kind = %(cold)s AND a.status = 'published'
              AND day.d BETWEEN a.valid_from AND a.valid_until
              AND EXISTS (SELECT 1 FROM advisory_publications p WHERE p.advisory_id = a.id
                          AND (p.withdrawn_at IS NULL OR p.withdrawn_at > %(now)s)
                          AND (f.id = ANY(p.field_ids) OR f.municipality = ANY(p.municipalities)
                               OR EXISTS (SELECT 1 FROM field_group_members m
                                          WHERE m.group_id = p.group_id
                                            AND m.field_id = f.id))))
FROM water_control w
JOIN fields f ON f.id = w.field_id
CROSS JOIN day
LEFT JOIN field_water_bands b ON b.field_id = w.field_id AND b.day = day.d
LEFT JOIN LATERAL (
    SELECT d.id AS device_id, r.value, r.time
    FROM devices d
    CROSS JOIN LATERAL (
        SELECT r.value, r.time FROM readings r
        WHERE r.device_id = d.id AND r.metric = %(metric)s
          AND r.time <= %(now)s AND r.time > %(since)s
        ORDER BY r.time DESC LIMIT 1) r
    WHERE d.field_id = w.field_id AND d.revoked_at IS NULL
    ORDER BY r.time DESC LIMIT 1) lv ON true
WHERE w.mode = ANY(%(modes)s) {{only}}
ORDER BY w.field_id"""

_GATES = """
SELECT d.field_id, d.id, coalesce(d.gate_role, 'supply'), rp.value, rp.time,
    c.id, (c.args->>'position')::float8, c.status
FROM devices d
LEFT JOIN LATERAL (
    SELECT r.value, r.time FROM readings r
    WHERE r.device_id = d.id AND r.metric = %(metric)s
      AND r.time <= %(now)s AND r.time > %(since)s
    ORDER BY r.time DESC LIMIT 1) rp ON true
LEFT JOIN LATERAL (
    SELECT c.id, c.args, c.status FROM device_commands c
    WHERE c.device_id = d.id AND c.name = 'set_gate'
    ORDER BY c.id DESC LIMIT 1) c ON true
WHERE d.field_id = ANY(%(fields)s) AND d.revoked_at IS NULL
  AND (d.gate_role IS NOT NULL OR d.profile = ANY(%(profiles)s))
ORDER BY d.field_id, d.id"""

_RECENT_LOG = """
SELECT f.id, l.device_id, l.command_id, l.position, l.reason, l.judged_at
FROM unnest(%(fields)s::text[]) AS f (id)
CROSS JOIN LATERAL (
    SELECT l.device_id, l.command_id, l.position, l.reason, l.judged_at
    FROM water_control_log l WHERE l.field_id = f.id
    ORDER BY l.id DESC LIMIT %(rows)s) l"""


def load_states(conn: psycopg.Connection, *, now: datetime,
                field_ids: Sequence[str] | None = None) -> list[FieldState]:
    """The state of every field in an automatic mode (or of ``field_ids``
    only) as of ``now``."""
    only = "AND w.field_id = ANY(%(only)s)" if field_ids is not None else ""
    params = {"now": now, "since": now - READING_LOOKBACK, "metric": LEVEL_METRIC,
              "usable": USABLE_SCORE, "cold": COLD_DAMAGE, "modes": list(ctl.AUTOMATIC),
              "only": list(field_ids or ())}
    fields = conn.execute(_FIELDS.format(only=only), params).fetchall()
    ids = [r[0] for r in fields]
    if not ids:
        return []
    gates: dict[str, list[tuple]] = {}
    for row in conn.execute(_GATES, {"now": now, "since": now - READING_LOOKBACK,
                                     "metric": GATE_METRIC, "fields": ids,
                                     "profiles": gate_profiles()}):
        gates.setdefault(row[0], []).append(row[1:])
    logs: dict[str, list[tuple]] = {}
    for row in conn.execute(_RECENT_LOG, {"fields": ids, "rows": RECENT_LOG_ROWS}):
        logs.setdefault(row[0], []).append(row[1:])
    return [_state(r, gates.get(r[0], []), logs.get(r[0], [])) for r in fields]


def _state(row: tuple, gates: list[tuple], log: list[tuple]) -> FieldState:
    (field_id, mode, schedule, max_open_h, override_at, override_by, low, high, phase,
     level, level_at, flagged, deep) = row
    try:
        windows = ctl.parse_schedule(schedule)
    except ctl.ScheduleError:
        windows = ()  # stored by hand and unusable: no window opens the gate
    return FieldState(
        field_id=field_id, mode=mode, schedule=windows, max_open_h=max_open_h,
        override_at=override_at, override_by=override_by, low_m=low, high_m=high,
        phase=phase,
        level_m=level, level_at=level_at, level_flagged=bool(flagged),
        deep_water_advisory=bool(deep),
        gates=tuple(gate_state(g, log) for g in gates),
        last_code=ctl.reason_code(log[0][3]) if log else None)


def gate_state(row: tuple, log: Sequence[tuple]) -> Gate:
    """A gate from its row of _GATES and its field's recent log rows, newest
    first, (device_id, command_id, position, reason, judged_at): its latest
    code, when its latest command was decided, since when it has been open
    and when it was last closed for having been open too long."""
    device_id, role, reported, reported_at, command_id, commanded, status = row
    own = [r for r in log if r[0] == device_id]
    commands = [r for r in own if r[1] is not None]
    commanded_at = next((r[4] for r in commands if r[1] == command_id), None)
    open_since = None
    for r in commands:  # newest first: the openings since the latest closing
        if r[2] is None or r[2] <= ctl.CLOSED_POSITION:
            break
        open_since = r[4]
    max_open = next((r[4] for r in commands if ctl.reason_code(r[3]) == "max-open"), None)
    return Gate(device_id=device_id, role=role, reported_position=reported,
                reported_at=reported_at, command_id=command_id, commanded_position=commanded,
                command_status=status, commanded_at=commanded_at, open_since=open_since,
                max_open_closed_at=max_open,
                last_code=ctl.reason_code(own[0][3]) if own else None)


_COMMAND_AND_LOG = """
WITH c AS (
    INSERT INTO device_commands (device_id, name, args, requested_by, expires_at)
    VALUES (%(device)s, 'set_gate', %(args)s::jsonb, %(by)s,
            now() + make_interval(secs => %(expires)s))
    RETURNING id)
INSERT INTO water_control_log (field_id, device_id, command_id, action, position, reason,
                               actor, judged_at)
SELECT %(field)s, %(device)s, c.id, %(action)s, %(position)s, %(reason)s, %(actor)s, %(now)s
FROM c RETURNING command_id"""

_LOG = """INSERT INTO water_control_log (field_id, device_id, command_id, action, position,
    reason, actor, judged_at)
VALUES (%(field)s, %(device)s, %(command)s, %(action)s, %(position)s, %(reason)s, %(actor)s,
        %(now)s)
RETURNING id"""


def write(conn: psycopg.Connection, decisions: Sequence[Decision], *, now: datetime,
          requested_by: str = SYSTEM_USER) -> list[int | None]:
    """Queue the commands and log every decision, in order, in one
    transaction; the command ids (None for a hold-back)."""
    ids: list[int | None] = []
    with conn.transaction():
        for d in decisions:
            params = {"field": d.field_id, "device": d.device_id, "action": d.action,
                      "position": d.position, "reason": d.log_reason[:500],
                      "actor": ctl.ACTOR, "now": now}
            if d.is_command:
                args = orjson.dumps({"position": d.position}).decode()
                row = conn.execute(_COMMAND_AND_LOG, params | {
                    "args": args, "by": requested_by,
                    "expires": COMMAND_EXPIRES.total_seconds()}).fetchone()
                ids.append(row[0])
            else:
                conn.execute(_LOG, params | {"command": None})
                ids.append(None)
    return ids


def log(conn: psycopg.Connection, *, field_id: str, action: str, reason: str, actor: str,
        device_id: str | None = None, command_id: int | None = None,
        position: float | None = None, judged_at: datetime | None = None) -> int:
    """One row of a person's doing (a mode set, a gate moved by hand)."""
    return conn.execute(_LOG, {"field": field_id, "device": device_id, "command": command_id,
                               "action": action, "position": position, "reason": reason[:500],
                               "actor": actor, "now": judged_at}).fetchone()[0]


# Setting a mode (the API and the CLI): schedule and max_open_h kept when not
# given; the override ends, control is the mode's again.
SET_CONTROL = """INSERT INTO water_control (field_id, mode, schedule, max_open_h, updated_by)
VALUES (%(field)s, %(mode)s, coalesce(%(schedule)s::jsonb, '[]'), coalesce(%(max)s, 8),
        %(user)s)
ON CONFLICT (field_id) DO UPDATE SET mode = EXCLUDED.mode,
    schedule = coalesce(%(schedule)s::jsonb, water_control.schedule),
    max_open_h = coalesce(%(max)s, water_control.max_open_h),
    override_at = NULL, override_by = NULL,
    updated_by = EXCLUDED.updated_by, updated_at = now()
RETURNING mode, schedule, max_open_h"""


def mode_reason(user: str, mode: str, schedule: Sequence[dict]) -> str:
    """The log's reason for a mode set by ``user``."""
    text = f"mode: {user} set the mode to {mode}"
    if mode == "schedule":
        text += " (" + ", ".join(f"{w['open']}-{w['close']}" for w in schedule) + ")"
    return text[:500]


def set_mode(conn: psycopg.Connection, field_id: str, *, user: str, mode: str,
             schedule: Sequence[ctl.Window] | None = None,
             max_open_h: float | None = None) -> tuple[str, list[dict], float]:
    """Set a field's mode (the CLI's way; the API's is api/queries/water_control.py)
    and log it; (mode, schedule, max_open_h) as stored."""
    windows = None if schedule is None else orjson.dumps([w.as_json() for w in schedule])
    with conn.transaction():
        row = conn.execute(SET_CONTROL, {"field": field_id, "mode": mode, "user": user,
                                         "schedule": windows and windows.decode(),
                                         "max": max_open_h}).fetchone()
        log(conn, field_id=field_id, action="mode", reason=mode_reason(user, mode, row[1]),
            actor=user, judged_at=datetime.now(UTC))
    return row


_READ_LOG = """SELECT id, device_id, command_id, action, position, reason, actor, decided_at,
    judged_at FROM water_control_log WHERE field_id = %s ORDER BY id DESC LIMIT %s"""


def read_log(conn: psycopg.Connection, field_id: str, limit: int) -> list[tuple]:
    """The field's latest ``limit`` log rows, newest first."""
    return conn.execute(_READ_LOG, (field_id, limit)).fetchall()
