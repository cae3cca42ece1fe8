"""The sandbox's conformance reports (devices/conformance.py, docs/sandbox.md):
a device's latest report and its history, and a check run now and stored.

Only the device's owner and admins: for anyone else the device is a 404,
whether or not they may see it otherwise (access.DEVICE_VISIBLE and the
owner), so the sandbox never shows another developer's prototype."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from psycopg import AsyncConnection

from agri.api.accounts import User
from agri.api.deps import Conn, CurrentUser, PrimaryConn, SettingsDep
from agri.api.queries import access
from agri.devices import conformance
from agri.devices.topics import DEVICE_ID_RE

router = APIRouter(prefix="/api/v1", tags=["devices"])

HISTORY = 20  # reports listed with the latest

# (id, profile, prototype, organisation, created_at, revoked_at) of the devices the user
# may check: their own (a developer or a farmer), or any for an admin.
_CHECKABLE = f"""SELECT d.id, d.profile, d.prototype, d.organisation, d.created_at,
       d.revoked_at FROM devices d
WHERE {access.DEVICE_VISIBLE} AND (%(role)s = 'admin' OR d.owner = %(user)s)
  AND (%(id)s::text IS NULL OR d.id = %(id)s)
  AND (%(id)s::text IS NOT NULL OR d.prototype)
ORDER BY d.id LIMIT %(limit)s"""

Minutes = Annotated[int, Query(ge=1, le=conformance.MAX_MINUTES,
                               description="the window: the last N minutes of messages")]
_CHECK = {"check": "rejected", "status": "fail",
          "summary": {"ja": "3 件が拒否されました (unit-not-accepted 3)",
                      "en": "3 rejected (unit-not-accepted 3)"},
          "figures": {"total": 3, "read": 3, "by_code": {"unit-not-accepted": {
              "count": 3, "record_index": 0, "received_at": "2026-07-15T00:40:02+00:00",
              "latest_reason": "unit 'in' not accepted for water_level (m, cm, mm) (see "
                               "docs/device-developers.md#unit-not-accepted)",
              "doc": "docs/device-developers.md#unit-not-accepted"}}},
          "change": [{"ja": "unit-not-accepted (レコード 0): unit 'in' not accepted ...",
                      "en": "unit-not-accepted (record 0): unit 'in' not accepted ...",
                      "doc": "docs/device-developers.md#unit-not-accepted"}]}
_REPORT = {"id": 12, "created_at": "2026-07-15T00:45:00+00:00", "created_by": "dev-sato",
           "device": "proto-01", "profile": "paddy-water",
           "window_from": "2026-07-14T23:45:00+00:00", "window_to": "2026-07-15T00:45:00+00:00",
           "passed": False, "checks": [_CHECK]}
_NOT_FOUND = {"content": {"application/json": {"example": {"detail": "no device 'proto-99'"}}}}


async def checkable(conn: AsyncConnection, user: User, device_id: str | None = None, *,
                    limit: int = 1) -> list[tuple]:
    """The device ``device_id`` if the user may check it, else the user's
    prototypes in id order (at most ``limit``)."""
    if device_id is not None and not DEVICE_ID_RE.fullmatch(device_id):
        return []
    cur = await conn.execute(_CHECKABLE, {**access.who(user), "id": device_id, "limit": limit})
    return await cur.fetchall()


async def _device(conn: AsyncConnection, user: User, device_id: str) -> tuple:
    rows = await checkable(conn, user, device_id)
    if not rows:
        raise HTTPException(404, f"no device {device_id[:64]!r}")
    return rows[0]


def _about(row: tuple) -> dict:
    return {"device": row[0], "profile": row[1], "prototype": row[2], "organisation": row[3]}


@router.get("/devices/{device_id}/conformance", responses={
    200: {"content": {"application/json": {"example": {
        "device": "proto-01", "profile": "paddy-water", "prototype": True,
        "organisation": "Tsugaru Sensors", "latest": _REPORT, "first_passed_at": None,
        "history": [{k: _REPORT[k] for k in ("id", "created_at", "created_by", "window_from",
                                              "window_to", "passed")}]}}}},
    404: _NOT_FOUND})
async def device_conformance(device_id: str, user: CurrentUser, conn: Conn):
    """The device's latest conformance report in full, when its first
    passing one was made, and the latest reports (without their checks)."""
    row = await _device(conn, user, device_id)
    history = await conformance.reports(conn, row[0], row[1], limit=HISTORY)
    return {**_about(row), "latest": history[0] if history else None,
            "first_passed_at": await conformance.first_passed(conn, row[0]),
            "history": [{k: r[k] for k in ("id", "created_at", "created_by", "window_from",
                                           "window_to", "passed")} for r in history]}


@router.post("/devices/{device_id}/conformance", status_code=201, responses={
    201: {"content": {"application/json": {"example": _REPORT}}}, 404: _NOT_FOUND})
async def check_device(device_id: str, user: CurrentUser, conn: PrimaryConn,
                       settings: SettingsDep, minutes: Minutes = conformance.DEFAULT_MINUTES):
    """Check what the device sent in the last ``minutes`` against the
    contract, store the report with the device and return it: per check
    pass, fail, not_tried or not_measured, with what to change."""
    row = await _device(conn, user, device_id)
    return await conformance.run(conn, row[0], row[1], minutes=minutes,
                                 max_payload_bytes=settings.max_payload_bytes,
                                 created_by=user.name)
