"""A field's water control (docs/water-control.md): its mode, schedule and
maximum open time, people's gate commands and the decision log. The caller
checks the field's scope (api/queries/access.py) first."""

from __future__ import annotations

import orjson
from psycopg import AsyncConnection

from agri.api.queries.series import iso
from agri.devices import commands
from agri.devices.profiles import PROFILES
from agri.water import controller as ctl
from agri.water.control_store import SET_CONTROL, gate_profiles, mode_reason

MANUAL_EXPIRES_S = 3600  # a person's gate command waits this long for the gate's answer

_CONTROL = """SELECT mode, schedule, max_open_h, override_at, override_by, updated_by, updated_at
FROM water_control WHERE field_id = %s"""

_GATES = """SELECT d.id, coalesce(d.gate_role, 'supply'), d.profile FROM devices d
WHERE d.field_id = %(field)s AND d.revoked_at IS NULL
  AND (d.gate_role IS NOT NULL OR d.profile = ANY(%(profiles)s)) ORDER BY d.id"""

_LOG_ROW = """INSERT INTO water_control_log (field_id, device_id, command_id, action, position,
    reason, actor, judged_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now())"""

_GATE = """SELECT d.profile, d.gate_role IS NOT NULL OR d.profile = ANY(%(profiles)s),
    (SELECT count(*) FROM device_commands c
     WHERE c.device_id = d.id AND c.status IN ('queued', 'sent'))
FROM devices d WHERE d.id = %(device)s AND d.field_id = %(field)s AND d.revoked_at IS NULL"""

_COMMAND = """INSERT INTO device_commands (device_id, name, args, requested_by, expires_at)
VALUES (%s, 'set_gate', %s::jsonb, %s, now() + make_interval(secs => %s)) RETURNING id"""

_OVERRIDE = """UPDATE water_control SET override_at = now(), override_by = %s
WHERE field_id = %s AND mode = ANY(%s) RETURNING override_at"""

_LOG = """SELECT id, device_id, command_id, action, position, reason, actor, decided_at,
    judged_at FROM water_control_log
WHERE field_id = %s AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s"""


class GateError(ValueError):
    """A gate command that cannot be queued; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def control(conn: AsyncConnection, field_id: str) -> dict:
    """The field's mode, schedule, maximum open time, override and gates."""
    row = await (await conn.execute(_CONTROL, (field_id,))).fetchone()
    gates = await (await conn.execute(_GATES, {"field": field_id,
                                               "profiles": gate_profiles()})).fetchall()
    mode, schedule, max_open_h, over_at, over_by, by, at = row or (
        "manual", [], 8.0, None, None, None, None)
    return {"field": field_id, "mode": mode, "schedule": schedule, "max_open_h": max_open_h,
            "override_at": over_at and iso(over_at), "override_by": over_by,
            "updated_by": by, "updated_at": at and iso(at),
            "gates": [{"device": g[0], "role": g[1]} for g in gates]}


async def set_control(conn: AsyncConnection, field_id: str, *, user: str, mode: str,
                      schedule: list[dict] | None, max_open_h: float | None) -> dict:
    """Set the mode (and the schedule or maximum open time when given);
    setting a mode gives control back after an override. Raises
    ctl.ScheduleError for a schedule that cannot be used."""
    windows = None if schedule is None else [w.as_json() for w in ctl.parse_schedule(schedule)]
    async with conn.transaction():
        await conn.execute(SET_CONTROL, {"field": field_id, "mode": mode, "user": user,
                                  "schedule": None if windows is None
                                  else orjson.dumps(windows).decode(),
                                  "max": max_open_h})
        current = await control(conn, field_id)
        await conn.execute(_LOG_ROW, (field_id, None, None, "mode", None,
                                      mode_reason(user, mode, current["schedule"]), user))
    return current


async def move_gate(conn: AsyncConnection, field_id: str, device_id: str, *, user: str,
                    position: float) -> dict:
    """Queue set_gate for a gate of the field as ``user``'s command; an
    automatic mode waits (override) until the farmer sets a mode again."""
    async with conn.transaction():
        row = await (await conn.execute(_GATE, {"device": device_id, "field": field_id,
                                                "profiles": gate_profiles()})).fetchone()
        if row is None:
            raise GateError(404, f"field {field_id!r} has no device {device_id[:64]!r}")
        profile, is_gate, waiting = row
        if not is_gate:
            raise GateError(409, f"device {device_id!r} is not a water gate: register it "
                                 f"with the water-gate profile or a gate role")
        try:
            args = commands.check(PROFILES[profile], "set_gate", {"position": position})
        except (commands.CommandError, KeyError) as exc:
            raise GateError(422, str(exc)) from None
        if waiting >= commands.MAX_OPEN:
            raise GateError(409, f"gate {device_id!r} has {waiting} unanswered commands: wait "
                                 f"until it answers or they expire")
        command_id = (await (await conn.execute(_COMMAND, (
            device_id, orjson.dumps(args).decode(), user, MANUAL_EXPIRES_S))).fetchone())[0]
        override = await (await conn.execute(_OVERRIDE, (user, field_id,
                                                         list(ctl.AUTOMATIC)))).fetchone()
        action = "close" if args["position"] == ctl.CLOSED_POSITION else (
            "open" if args["position"] == ctl.OPEN_POSITION else "set")
        text = f"manual: {user} set the gate to {args['position']:g} %"
        if override:
            text += "; automatic control waits until the mode is set again"
        await conn.execute(_LOG_ROW, (field_id, device_id, command_id, action,
                                      args["position"], text, user))
    return {"command": command_id, "device": device_id, "position": args["position"],
            "status": "queued", "override": override is not None}


async def log_page(conn: AsyncConnection, field_id: str, *, cursor: int | None,
                   limit: int) -> list[dict]:
    """Up to ``limit + 1`` log rows, newest first, before ``cursor``."""
    rows = await (await conn.execute(_LOG, (field_id, cursor, cursor, limit + 1))).fetchall()
    return [{"id": i, "device": dev, "command": cmd, "action": action, "position": pos,
             "code": ctl.reason_code(reason), "reason": reason, "actor": actor,
             "decided_at": iso(decided), "judged_at": judged and iso(judged)}
            for i, dev, cmd, action, pos, reason, actor, decided, judged in rows]
