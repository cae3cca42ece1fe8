"""Commands to a device (devices/commands.py, docs/device-commands.md):
queue one, and read the device's command log.

Who sees the device (access.DEVICE_VISIBLE) reads its log; another user's
device is a 404. Commanding it is for its owner (the device's owner, or the
owner of its field when the device has none), officers of its field's
region and admins; someone who sees it otherwise (a farmer a field is
shared with, a farmer whose field holds another owner's device) gets 403.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from agri.api.deps import CurrentUser, PrimaryConn
from agri.api.pagination import Cursor, page
from agri.api.queries import access
from agri.api.queries.series import iso
from agri.devices import commands
from agri.devices.profiles import PROFILES
from agri.devices.topics import DEVICE_ID_RE

router = APIRouter(prefix="/api/v1", tags=["devices"])

PAGE = 50
MAX_PAGE = 200
CommandLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="commands per page")]

# The device's owner, or its field's owner when it has none; officers of the
# field's region; admins (alias d: devices).
MAY_COMMAND = f"""(
    %(role)s = 'admin'
    OR (%(role)s IN ('farmer', 'developer') AND d.owner = %(user)s)
    OR EXISTS (SELECT 1 FROM fields f WHERE f.id = d.field_id AND (
        {access.in_region('f.municipality')}
        OR (%(role)s = 'farmer' AND d.owner IS NULL AND f.owner = %(user)s)))
)"""

_DEVICE = f"""SELECT d.id, d.profile, d.revoked_at IS NOT NULL, {MAY_COMMAND},
    (SELECT count(*) FROM device_commands c
     WHERE c.device_id = d.id AND c.status IN ('queued', 'sent'))
FROM devices d WHERE d.id = %(id)s AND {access.DEVICE_VISIBLE}"""

COLUMNS = ("id, device_id, name, args, status, reason, requested_by, requested_at, expires_at, "
           "sent_at, attempts, acknowledged_at, done_at")
_INSERT = f"""INSERT INTO device_commands (device_id, name, args, requested_by, expires_at)
VALUES (%s, %s, %s::jsonb, %s, now() + make_interval(secs => %s)) RETURNING {COLUMNS}"""
_LOG = f"""SELECT {COLUMNS} FROM device_commands
WHERE device_id = %s AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s"""

COMMAND = {"id": 812, "device": "gate-0007", "name": "set_gate", "args": {"position": 50.0},
           "status": "done", "reason": None, "requested_by": "sato",
           "requested_at": "2026-07-15T09:40:00+09:00", "expires_at": "2026-07-15T10:40:00+09:00",
           "sent_at": "2026-07-15T09:40:01+09:00", "attempts": 1,
           "acknowledged_at": "2026-07-15T09:40:02+09:00",
           "done_at": "2026-07-15T09:40:31+09:00"}
_NOT_FOUND = {"content": {"application/json": {"example": {"detail": "no device 'gate-9999'"}}}}


Number = Annotated[float, Field(strict=True)]  # not "1", not true


class NewCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]{0,31}$",
                      description="a command the device's profile accepts")
    args: dict[str, Number] = Field(default_factory=dict, max_length=16,
                                    description="the command's arguments, argument: number")
    expires_in_s: int = Field(default=3600, ge=commands.MIN_EXPIRES_S,
                              le=commands.MAX_EXPIRES_S,
                              description="seconds the device has to answer; after that "
                                          "the command expires and is not sent again")


def _item(row) -> dict:
    (cid, device, name, args, status, reason, by, requested, expires, sent, attempts, acked,
     done) = row
    return {"id": cid, "device": device, "name": name, "args": args, "status": status,
            "reason": reason, "requested_by": by, "requested_at": iso(requested),
            "expires_at": iso(expires), "sent_at": sent and iso(sent), "attempts": attempts,
            "acknowledged_at": acked and iso(acked), "done_at": done and iso(done)}


async def _device(conn, user, device_id: str):
    row = None
    if DEVICE_ID_RE.fullmatch(device_id):
        cur = await conn.execute(_DEVICE, {"id": device_id, **access.who(user)})
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no device {device_id[:64]!r}")
    return row


@router.post("/devices/{device_id}/commands", status_code=202, responses={
    202: {"content": {"application/json": {"example": COMMAND | {
        "status": "queued", "sent_at": None, "attempts": 0, "acknowledged_at": None,
        "done_at": None}}}},
    403: {"content": {"application/json": {"example": {
        "detail": "only the device's owner, an officer of its region or an admin may "
                  "command it"}}}},
    404: _NOT_FOUND,
    409: {"content": {"application/json": {"example": {
        "detail": "device 'gate-0007' is revoked: it cannot be commanded"}}}},
    422: {"content": {"application/json": {"example": {
        "detail": "set_gate: position = 150 is outside 0 to 100 %"}}}}})
async def send_command(
        device_id: str, user: CurrentUser, conn: PrimaryConn,
        new: Annotated[NewCommand, Body(openapi_examples={
            "gate": {"summary": "open a gate half way",
                     "value": {"name": "set_gate", "args": {"position": 50},
                               "expires_in_s": 600}},
            "interval": {"summary": "report every 5 minutes",
                         "value": {"name": "set_interval", "args": {"seconds": 300}}}})]):
    """Queue a command for the device; ingest publishes it on the device's
    command topic and records its answers. 202: the command as queued."""
    _, profile, revoked, may_command, waiting = await _device(conn, user, device_id)
    if not may_command:
        raise HTTPException(403, "only the device's owner, an officer of its region or an "
                                 "admin may command it")
    if revoked:
        raise HTTPException(409, f"device {device_id!r} is revoked: it cannot be commanded")
    try:
        args = commands.check(PROFILES[profile], new.name, new.args)
    except commands.CommandError as exc:
        raise HTTPException(422, str(exc)) from None
    if waiting >= commands.MAX_OPEN:
        raise HTTPException(409, f"device {device_id!r} has {waiting} unanswered commands: "
                                 f"wait until it answers or they expire")
    cur = await conn.execute(_INSERT, (device_id, new.name, orjson.dumps(args).decode(),
                                       user.name, new.expires_in_s))
    return _item(await cur.fetchone())


@router.get("/devices/{device_id}/commands", responses={
    200: {"content": {"application/json": {"example": {"items": [COMMAND], "next": None}}}},
    404: _NOT_FOUND})
async def list_commands(device_id: str, user: CurrentUser, conn: PrimaryConn,
                        cursor: Cursor = None, limit: CommandLimit = PAGE):
    """The device's commands, newest first, with their status (whoever sees the device)."""
    await _device(conn, user, device_id)
    cur = await conn.execute(_LOG, (device_id, cursor, cursor, limit + 1))
    return page([_item(r) for r in await cur.fetchall()], limit)

