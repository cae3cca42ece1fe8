"""The water control page of a field, ``/fields/{id}/water``: its mode
(manual, timer, hold level), today's band and latest level, its gates with
their position and last command, and the log of decisions with reasons.

Whoever sees the field reads the page (access.visible_field); its owner,
the officers of its region and admins (access.may_change) change the mode
and the timer, command a gate (a ``set_gate`` device command, which also
pauses an automatic mode: ``override_at``) and give control back. Everyone
else gets the 404 page. Every change is logged in ``water_control_log``.
"""

from __future__ import annotations

import re
from typing import Annotated

import orjson
from fastapi import APIRouter, Form, HTTPException, Query, Request
from psycopg import AsyncConnection

from agri.api.accounts import User
from agri.api.deps import PrimaryConn
from agri.api.pagination import MAX_CURSOR
from agri.api.queries import access
from agri.api.queries import water_control as wc
from agri.api.sessions import PageUser
from agri.api.web import (
    i18n,
    i18n_water,  # noqa: F401 - adds the page's words to i18n
    staff,
)
from agri.api.web.farmer import field_or_404
from agri.api.web.field_data import cm
from agri.api.web.forms import CsrfChecked
from agri.api.web.render import NO_STORE, local_time, render
from agri.clock import today_local
from agri.devices.topics import DEVICE_ID_RE
from agri.water import controller as ctl

router = APIRouter(include_in_schema=False)

MODES, AUTOMATIC = ctl.MODES, ctl.AUTOMATIC
GATE_PROFILE = "water-gate"
SET_GATE = "set_gate"  # what the gate's last command shows
POSITIONS = (0, 25, 50, 75, 100)  # the buttons of a gate, percent open
SCHEDULE_ROWS = 4  # open/close pairs the timer form offers
LOG_PAGE = 20
TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MODE_SET_RE = re.compile(r"set the mode to (manual|schedule|hold)\b")

LogCursor = Annotated[int | None, Query(ge=1, le=MAX_CURSOR)]
FormWord = Annotated[str, Form(max_length=200)]

_CONTROL = """SELECT mode, schedule, override_at, override_by FROM water_control
              WHERE field_id = %s"""
_BAND = "SELECT low_m, high_m FROM field_water_bands WHERE field_id = %s AND day = %s"
_LEVEL = """SELECT latest_level_m, latest_at FROM field_water_status WHERE field_id = %s
            ORDER BY computed_for DESC LIMIT 1"""
_GATES = f"""
SELECT d.id, coalesce(d.gate_role, 'supply'), d.revoked_at IS NOT NULL,
       (SELECT r.value FROM readings r WHERE r.device_id = d.id AND r.metric = 'gate_position'
        ORDER BY r.time DESC LIMIT 1),
       (SELECT r.time FROM readings r WHERE r.device_id = d.id AND r.metric = 'gate_position'
        ORDER BY r.time DESC LIMIT 1),
       c.args->>'position', c.status, c.requested_at
FROM devices d
LEFT JOIN LATERAL (SELECT args, status, requested_at FROM device_commands c
                   WHERE c.device_id = d.id AND c.name = '{SET_GATE}'
                   ORDER BY c.id DESC LIMIT 1) c ON true
WHERE d.field_id = %(field)s AND d.profile = '{GATE_PROFILE}' AND d.revoked_at IS NULL
  AND {access.DEVICE_VISIBLE}
ORDER BY d.id"""
_LOG = """SELECT id, device_id, action, position, reason, actor, decided_at
          FROM water_control_log WHERE field_id = %s AND (%s::bigint IS NULL OR id < %s)
          ORDER BY id DESC LIMIT %s"""
_SET_SCHEDULE = """
INSERT INTO water_control (field_id, schedule, updated_by)
VALUES (%(field)s, %(schedule)s::jsonb, %(user)s)
ON CONFLICT (field_id) DO UPDATE SET schedule = EXCLUDED.schedule,
    updated_by = EXCLUDED.updated_by, updated_at = now()"""
_RESUME = """UPDATE water_control SET override_at = NULL, override_by = NULL,
                 updated_by = %(user)s, updated_at = now()
             WHERE field_id = %(field)s AND override_at IS NOT NULL RETURNING mode"""
_LOG_ROW = """INSERT INTO water_control_log (field_id, device_id, command_id, action, position,
                                             reason, actor)
              VALUES (%s, %s, %s, %s, %s, %s, %s)"""


async def _control(conn: AsyncConnection, field_id: str) -> dict:
    row = await (await conn.execute(_CONTROL, (field_id,))).fetchone()
    if row is None:
        return {"mode": "manual", "schedule": [], "override_at": None, "override_by": None}
    mode, schedule, at, by = row
    return {"mode": mode, "schedule": schedule if isinstance(schedule, list) else [],
            "override_at": at, "override_by": by}


async def _gates(conn: AsyncConnection, user: User, field_id: str) -> list[dict]:
    cur = await conn.execute(_GATES, {"field": field_id, **access.who(user)})
    return [{"id": g, "role": role, "position": pos, "position_at": pos_at,
             "command": None if status is None else {
                 "position": cmd_pos, "status": status, "at": requested}}
            for g, role, _revoked, pos, pos_at, cmd_pos, status, requested
            in await cur.fetchall()]


async def _page(request: Request, conn: AsyncConnection, user: User, row, *,
                before: int | None = None, error: str | None = None,
                error_values: dict | None = None, status: int = 200):
    field_id = row[0]
    control = await _control(conn, field_id)
    band = await (await conn.execute(_BAND, (field_id, today_local()))).fetchone()
    level = await (await conn.execute(_LEVEL, (field_id,))).fetchone()
    log = await (await conn.execute(_LOG, (field_id, before, before, LOG_PAGE + 1))).fetchall()
    lang = i18n.choose(request, user.language)
    schedule = [(s.get("open", ""), s.get("close", "")) for s in control["schedule"]
                if isinstance(s, dict)][:SCHEDULE_ROWS]
    schedule += [("", "")] * (SCHEDULE_ROWS - len(schedule))
    done = request.query_params.get("done", "")
    response = render(request, "water.html", {
        "user": user, "field": {"id": field_id, "name": row[1]},
        "may_change": access.may_change(user, row), "control": control, "modes": MODES,
        "automatic": control["mode"] in AUTOMATIC,
        "band": band and {"low": cm(band[0]), "high": cm(band[1])},
        "level": level and level[0] is not None and {"value": cm(level[0]),
                                                     "at": local_time(level[1])},
        "gates": await _gates(conn, user, field_id), "positions": POSITIONS,
        "schedule": schedule,
        "log": [(*r[:4], _reason(lang, r[4]), *r[5:]) for r in log[:LOG_PAGE]],
        "older_href": f"/fields/{field_id}/water?before={log[LOG_PAGE - 1][0]}"
        if len(log) > LOG_PAGE else None,
        "done": done if done in ("mode", "schedule", "set", "resume") else "",
        "error_text": i18n.gettext(lang, error, **(error_values or {})) if error else None,
    }, data_time=level[1] if level else None, status=status)
    if done or error:
        response.headers["Cache-Control"] = NO_STORE
    return response


def _reason(lang: str, reason: str | None) -> str:
    """A logged reason in the page's language: people's changes by their code,
    the controller's own reasons as they were logged."""
    code = ctl.reason_code(reason)
    if code == "mode" and (m := MODE_SET_RE.search(reason or "")):
        return i18n.gettext(lang, "wc.reason.mode",
                            mode=i18n.gettext(lang, f"wc.mode.{m.group(1)}"))
    if code in ("manual", "resume"):
        return i18n.gettext(lang, f"wc.reason.{code}")
    return reason or ""


async def _changeable(request: Request, conn: AsyncConnection, user: User, field_id: str):
    """The field's row when the user may change it; 404 when they cannot see it."""
    row = await field_or_404(conn, user, field_id)
    if not access.may_change(user, row):
        raise HTTPException(403, "wc.error.change")
    return row


@router.get("/fields/{field_id}/water")
async def water_page(request: Request, field_id: str, conn: PrimaryConn, user: PageUser,
                     before: LogCursor = None):
    row = await field_or_404(conn, user, field_id)
    return await _page(request, conn, user, row, before=before)


@router.post("/fields/{field_id}/water/mode")
async def set_mode(request: Request, field_id: str, conn: PrimaryConn, user: PageUser,
                   _csrf: CsrfChecked, mode: FormWord = ""):
    row = await _changeable(request, conn, user, field_id)
    if mode not in MODES:
        return await _page(request, conn, user, row, error="wc.error.mode", status=400)
    await wc.set_control(conn, row[0], user=user.name, mode=mode, schedule=None,
                         max_open_h=None)
    return staff.see_other(f"/fields/{row[0]}/water?done=mode")


def _schedule(pairs: list[tuple[str, str]]) -> list[dict]:
    out = []
    for opens, closes in pairs:
        opens, closes = opens.strip(), closes.strip()
        if not opens and not closes:
            continue
        if not opens or not closes:
            raise staff.FormError("wc.error.pair")
        if not (TIME_RE.fullmatch(opens) and TIME_RE.fullmatch(closes)):
            raise staff.FormError("wc.error.time")
        if opens == closes:
            raise staff.FormError("wc.error.same")
        out.append({"open": opens, "close": closes})
    return sorted(out, key=lambda s: s["open"])


@router.post("/fields/{field_id}/water/schedule")
async def set_schedule(request: Request, field_id: str, conn: PrimaryConn, user: PageUser,
                       _csrf: CsrfChecked, open_1: FormWord = "", close_1: FormWord = "",
                       open_2: FormWord = "", close_2: FormWord = "", open_3: FormWord = "",
                       close_3: FormWord = "", open_4: FormWord = "", close_4: FormWord = ""):
    row = await _changeable(request, conn, user, field_id)
    try:
        schedule = _schedule([(open_1, close_1), (open_2, close_2), (open_3, close_3),
                              (open_4, close_4)])
    except staff.FormError as exc:
        return await _page(request, conn, user, row, error=exc.key, status=400)
    await conn.execute(_SET_SCHEDULE, {"field": row[0], "user": user.name,
                                       "schedule": orjson.dumps(schedule).decode()})
    return staff.see_other(f"/fields/{row[0]}/water?done=schedule")


def _position(text: str) -> float:
    text = text.strip()
    if not re.fullmatch(r"\d{1,3}(\.\d{1,2})?", text):
        raise staff.FormError("wc.error.position")
    value = float(text)
    if not 0 <= value <= 100:
        raise staff.FormError("wc.error.position")
    return value


@router.post("/fields/{field_id}/water/gates/{device_id}")
async def set_gate(request: Request, field_id: str, device_id: str, conn: PrimaryConn,
                   user: PageUser, _csrf: CsrfChecked, position: FormWord = ""):
    row = await _changeable(request, conn, user, field_id)
    gates = {g["id"] for g in await _gates(conn, user, row[0])}
    if not DEVICE_ID_RE.fullmatch(device_id) or device_id not in gates:
        raise HTTPException(404, f"no gate {device_id[:64]!r}")
    try:
        value = _position(position)
    except staff.FormError:
        return await _page(request, conn, user, row, error="wc.error.position", status=400)
    try:
        await wc.move_gate(conn, row[0], device_id, user=user.name, position=value)
    except wc.GateError as exc:
        if exc.status == 404:
            raise HTTPException(404, f"no gate {device_id[:64]!r}") from None
        return await _page(request, conn, user, row, status=exc.status,
                           error="wc.error.busy" if exc.status == 409 else "wc.error.position")
    return staff.see_other(f"/fields/{row[0]}/water?done=set")


@router.post("/fields/{field_id}/water/resume")
async def resume(request: Request, field_id: str, conn: PrimaryConn, user: PageUser,
                 _csrf: CsrfChecked):
    row = await _changeable(request, conn, user, field_id)
    async with conn.transaction():
        cur = await conn.execute(_RESUME, {"field": row[0], "user": user.name})
        if await cur.fetchone() is not None:
            await conn.execute(_LOG_ROW, (row[0], None, None, "mode", None,
                                          f"resume: {user.name} gave control back", user.name))
    return staff.see_other(f"/fields/{row[0]}/water?done=resume")
