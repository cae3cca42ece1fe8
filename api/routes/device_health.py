"""Device health (api/queries/device_health.py): one device, and the user's
live devices a page at a time, each with its alerts.

Who sees which device is access.DEVICE_VISIBLE, as for the device itself:
another user's device is a 404, and so is any device for a planner; the
list is for farmers, officers, developers and admins (a planner gets 403).
docs/device-health.md describes the fields and every reason code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from agri.api.deps import Conn, CurrentUser, SettingsDep
from agri.api.pagination import DEFAULT_LIMIT, page
from agri.api.queries import access
from agri.api.queries.device_health import health_of, visible_devices
from agri.api.routes.devices import LISTERS, DeviceCursor
from agri.devices.topics import DEVICE_ID_RE

router = APIRouter(prefix="/api/v1", tags=["devices"])

# A page reads a day of every metric of each device: fewer than the device list's pages.
MAX_LIMIT = 200
HealthLimit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="devices per page")]

_ALERT_EXAMPLE = {"code": "clock_whole_hours", "colour": "red", "severity": "critical",
                  "text": {"ja": "時計が +9 h ずれています: おそらく日本時間を UTC として送って"
                                 "います。UTC (またはオフセット付き) で送ってください",
                           "en": "clock off by +9 h: the device probably sends Japan local "
                                 "time as UTC; send UTC (or an offset)"}}
_HEALTH_EXAMPLE = {
    "device": "pw-0003", "profile": "paddy-water", "field": "hirosaki-b01-03",
    "revoked_at": None, "as_of": "2026-07-15T09:45:12+09:00", "status": "critical",
    "last_seen": {"received_at": "2026-07-15T09:40:02+09:00",
                  "measured_at": "2026-07-15T09:40:00+09:00", "age_s": 310.2},
    "regularity": {"window_s": 86400, "metrics": {
        "water_level": {"interval_s": 600, "expected": 144, "received": 131,
                        "intervals_with_reading": 131, "share": 0.91, "longest_gap_s": 4200.0},
        "battery": {"interval_s": 3600, "expected": 24, "received": 24,
                    "intervals_with_reading": 24, "share": 1.0, "longest_gap_s": 3600.0}}},
    "battery": {"value": 66.0, "unit": "%EL", "measured_at": "2026-07-15T09:00:00+09:00",
                "slope_pct_per_day": -2.0, "readings_7d": 168,
                "predicted_empty": "2026-08-17"},
    "radio": None,
    "clock": {"skew_s": 32399.8, "samples": 20, "agreement": 1.0, "whole_hours": 9,
              "refused_24h": 0, "reason": {k: v for k, v in _ALERT_EXAMPLE.items()
                                           if k != "severity"}},
    "quality_flags": [{"metric": "water_level", "kind": "stuck", "flags": 1, "readings": 40,
                       "until": "2026-07-14T23:50:00+09:00", "excludes": True}],
    "alerts": [_ALERT_EXAMPLE]}
_NOT_FOUND = {"content": {"application/json": {"example": {"detail": "no device 'pw-9999'"}}}}


@router.get("/devices/health", responses={
    200: {"content": {"application/json": {"example": {"items": [_HEALTH_EXAMPLE],
                                                        "next": "pw-0003"}}}},
    403: {"content": {"application/json": {"example": {
        "detail": "device health is for farmer, officer, developer, admin; you are signed "
                  "in as planner"}}}}})
async def list_device_health(user: CurrentUser, conn: Conn, settings: SettingsDep,
                             cursor: DeviceCursor = None, limit: HealthLimit = DEFAULT_LIMIT):
    """The health of the user's live (not revoked) devices in id order, with
    their alerts; ``next`` is the id of the page's last device."""
    access.require_role(user, *LISTERS, action="device health")
    rows = await visible_devices(conn, user, cursor=cursor, limit=limit + 1)
    items = await health_of(conn, rows[:limit], max_future_s=settings.max_future_s)
    return page(items + [{"device": r[0]} for r in rows[limit:]], limit, key="device")


@router.get("/devices/{device_id}/health", responses={
    200: {"content": {"application/json": {"example": _HEALTH_EXAMPLE}}}, 404: _NOT_FOUND})
async def device_health(device_id: str, user: CurrentUser, conn: Conn, settings: SettingsDep):
    """One device's health: last seen, regularity over the last 24 h against
    its profile's intervals, battery trend and predicted empty date, radio,
    clock skew, quality control flags, and the alerts drawn from them."""
    rows = (await visible_devices(conn, user, device_id=device_id)
            if DEVICE_ID_RE.fullmatch(device_id) else [])
    if not rows:
        raise HTTPException(404, f"no device {device_id[:64]!r}")
    return (await health_of(conn, rows, max_future_s=settings.max_future_s))[0]
