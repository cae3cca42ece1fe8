"""A field's water control (docs/water-control.md): read and set its mode,
move a gate by hand, read the decision log.

Whoever sees the field reads its control and log; setting the mode and
moving a gate is for the field's owner, officers of its municipality and
admins (someone who only sees it, a farmer it is shared with, gets 403);
another user's field is a 404.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from agri.api.deps import CurrentUser, PrimaryConn
from agri.api.pagination import Cursor, page
from agri.api.queries import access
from agri.api.queries import water_control as wc
from agri.water import controller as ctl

router = APIRouter(prefix="/api/v1", tags=["water control"])

PAGE = 50
MAX_PAGE = 200
LogLimit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="log rows per page")]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_FORBIDDEN = "only the field's owner, an officer of its municipality or an admin may do this"

CONTROL = {"field": "f-0012", "mode": "hold", "schedule": [{"open": "05:00", "close": "07:00"}],
           "max_open_h": 8.0, "override_at": None, "override_by": None, "updated_by": "sato",
           "updated_at": "2026-07-15T09:40:00+09:00",
           "gates": [{"device": "gate-0007", "role": "supply"}]}
_NOT_FOUND = {"content": {"application/json": {"example": {"detail": "no field 'f-9999'"}}}}
_403 = {"content": {"application/json": {"example": {"detail": _FORBIDDEN}}}}


class ScheduleWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    open: str = Field(pattern=HHMM, description="local time (Asia/Tokyo) the supply opens")
    close: str = Field(pattern=HHMM, description="local time it closes (earlier: next day)")


class NewControl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["manual", "schedule", "hold"]
    schedule: list[ScheduleWindow] | None = Field(
        default=None, max_length=ctl.MAX_WINDOWS,
        description="the schedule mode's windows; left out: kept as it is")
    max_open_h: float | None = Field(default=None, gt=0, le=48, allow_inf_nan=False,
                                     description="hours a supply gate may stay open in an "
                                                 "automatic mode; left out: kept")


class NewPosition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position: Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False,
                                     description="gate opening, % (0 closed)")]


async def _field(conn, user, field_id: str, *, to_change: bool = False):
    row = await access.visible_field(conn, user, field_id)
    if row is None:
        raise HTTPException(404, f"no field {field_id[:64]!r}")
    if to_change and not access.may_change(user, row):
        raise HTTPException(403, _FORBIDDEN)
    return row


@router.get("/fields/{field_id}/water-control", responses={
    200: {"content": {"application/json": {"example": CONTROL}}}, 404: _NOT_FOUND})
async def get_water_control(field_id: str, user: CurrentUser, conn: PrimaryConn):
    """The field's water control mode, schedule, maximum open time, override and gates."""
    await _field(conn, user, field_id)
    return await wc.control(conn, field_id)


@router.put("/fields/{field_id}/water-control", responses={
    200: {"content": {"application/json": {"example": CONTROL}}}, 403: _403, 404: _NOT_FOUND,
    422: {"content": {"application/json": {"example": {
        "detail": "a window's open and close times differ"}}}}})
async def put_water_control(
        field_id: str, user: CurrentUser, conn: PrimaryConn,
        new: Annotated[NewControl, Body(openapi_examples={
            "hold": {"summary": "hold the day's target depth", "value": {"mode": "hold"}},
            "schedule": {"summary": "open the supply early morning",
                         "value": {"mode": "schedule",
                                   "schedule": [{"open": "05:00", "close": "07:00"}],
                                   "max_open_h": 4}}})]):
    """Set the mode; this also gives control back after a person moved a gate."""
    await _field(conn, user, field_id, to_change=True)
    schedule = None if new.schedule is None else [w.model_dump() for w in new.schedule]
    try:
        return await wc.set_control(conn, field_id, user=user.name, mode=new.mode,
                                    schedule=schedule, max_open_h=new.max_open_h)
    except ctl.ScheduleError as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/fields/{field_id}/gates/{device_id}/position", status_code=202, responses={
    202: {"content": {"application/json": {"example": {
        "command": 812, "device": "gate-0007", "position": 50.0, "status": "queued",
        "override": True}}}},
    403: _403, 404: _NOT_FOUND,
    409: {"content": {"application/json": {"example": {
        "detail": "gate 'gate-0007' has 20 unanswered commands: wait until it answers or "
                  "they expire"}}}}})
async def set_gate_position(field_id: str, device_id: str, user: CurrentUser,
                            conn: PrimaryConn, new: NewPosition):
    """Move a gate of the field by hand (set_gate, queued for ingest to send). In
    an automatic mode the platform then leaves the gates alone until the
    mode is set again."""
    await _field(conn, user, field_id, to_change=True)
    try:
        return await wc.move_gate(conn, field_id, device_id, user=user.name,
                                  position=new.position)
    except wc.GateError as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.get("/fields/{field_id}/water-control/log", responses={
    200: {"content": {"application/json": {"example": {"items": [{
        "id": 40, "device": "gate-0007", "command": 812, "action": "open", "position": 100.0,
        "code": "below-band", "reason": "below-band: level 1.8 cm at 2026-07-15 09:30 is "
                                        "below 2.5 cm (band 2.0 cm to 4.0 cm)",
        "actor": "agri-water", "decided_at": "2026-07-15T09:40:00+09:00",
        "judged_at": "2026-07-15T09:40:00+09:00"}], "next": None}}}},
    404: _NOT_FOUND})
async def water_control_log(field_id: str, user: CurrentUser, conn: PrimaryConn,
                            cursor: Cursor = None, limit: LogLimit = PAGE):
    """The field's water control decisions, newest first, each with its reason."""
    await _field(conn, user, field_id)
    return page(await wc.log_page(conn, field_id, cursor=cursor, limit=limit), limit)
