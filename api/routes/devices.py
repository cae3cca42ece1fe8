"""Devices: the list a user may see and one device, each with when it was
last heard (its latest measurement time), its latest battery reading and a
status (api/queries/conditions.py): ``ok``, ``stale``, ``offline``,
``never`` (nothing stored yet) or ``revoked``, with the colour it is shown in.

Lists are for farmers, officers, developers and admins; a planner gets 403
(planners see aggregates only). Who sees which device is
access.DEVICE_VISIBLE: a developer only their own devices, also on a field
shared with others. Lists are in id order; ``next`` is the id of a page's
last device, passed back as ``cursor``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from agri.api.accounts import Role
from agri.api.deps import Conn, CurrentUser, SettingsDep
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import DEFAULT_LIMIT, Limit, page
from agri.api.queries import access, conditions
from agri.api.queries.series import iso
from agri.devices.profiles import METRICS, PROFILES
from agri.devices.topics import DEVICE_ID_RE

router = APIRouter(prefix="/api/v1", tags=["devices"])

# Each route takes the user before its connection: the token lookup borrows a
# pool connection of its own and gives it back first, so concurrent requests
# never each hold one connection while waiting for a second.

LISTERS = (Role.FARMER, Role.OFFICER, Role.DEVELOPER, Role.ADMIN)
COLOURS = {**conditions.COLOURS, "never": "grey", "revoked": "grey"}

DeviceCursor = Annotated[str | None, Query(
    max_length=64, pattern=f"^{DEVICE_ID_RE.pattern}$",
    description="the `next` of the previous page (a device id)")]
FieldFilter = Annotated[str | None, Query(
    max_length=64, pattern=f"^{FIELD_ID_RE.pattern}$", description="only devices on this field")]
ProfileFilter = Annotated[str | None, Query(
    max_length=64, pattern=r"^[a-z0-9-]{1,64}$", description="only devices of this profile",
    examples=["paddy-water"])]

_ITEM_EXAMPLE = {"id": "pw-0003", "profile": "paddy-water", "field": "hirosaki-b01-03",
                 "owner": None, "created_at": "2026-04-20T10:02:11+09:00", "revoked_at": None,
                 "last_seen": "2026-07-15T09:40:00+09:00", "age_s": 312.4,
                 "battery": {"value": 81.0, "unit": "%EL",
                             "measured_at": "2026-07-15T09:00:00+09:00"},
                 "status": "ok", "colour": "green"}

_LIST = f"""SELECT d.id, d.profile, d.field_id, d.owner, d.created_at, d.revoked_at
FROM devices d
WHERE {access.DEVICE_VISIBLE}
  AND (%(cursor)s::text IS NULL OR d.id > %(cursor)s)
  AND (%(field)s::text IS NULL OR d.field_id = %(field)s)
  AND (%(profile)s::text IS NULL OR d.profile = %(profile)s)
ORDER BY d.id LIMIT %(limit)s"""


async def _items(conn, rows, *, max_future_s: float) -> list[dict]:
    """Items of device rows, with one index probe per (device, metric)."""
    pairs = [(r[0], m) for r in rows for m in PROFILES[r[1]].metrics]
    found = await conditions.latest(conn, pairs, max_future_s=max_future_s)
    by_device: dict[str, list] = {}
    for (d, m), (t, _) in found.items():
        by_device.setdefault(d, []).append((t, m))
    now = datetime.now(UTC)
    out = []
    for device_id, profile, field_id, owner, created, revoked in rows:
        intervals = PROFILES[profile].intervals_s
        seen = by_device.get(device_id, [])
        last = max(seen, default=None)
        age = None if last is None else max(0.0, (now - last[0]).total_seconds())
        if revoked is not None:
            state = "revoked"
        elif last is None:
            state = "never"
        else:
            # Last heard (any metric) against the shortest interval it reports at.
            state = conditions.status(age, min(intervals.values()))
        battery = found.get((device_id, "battery"))
        out.append({
            "id": device_id, "profile": profile, "field": field_id, "owner": owner,
            "created_at": iso(created), "revoked_at": revoked and iso(revoked),
            "last_seen": last and iso(last[0]), "age_s": None if age is None else round(age, 1),
            "battery": None if battery is None else {
                "value": battery[1], "unit": METRICS["battery"].unit,
                "measured_at": iso(battery[0])},
            "status": state, "colour": COLOURS[state]})
    return out


@router.get("/devices", responses={
    200: {"content": {"application/json": {"example": {"items": [_ITEM_EXAMPLE],
                                                        "next": "pw-0003"}}}},
    403: {"content": {"application/json": {"example": {
        "detail": "listing devices is for farmer, officer, developer, admin; you are signed "
                  "in as planner"}}}}})
async def list_devices(user: CurrentUser, conn: Conn, settings: SettingsDep,
                       cursor: DeviceCursor = None, limit: Limit = DEFAULT_LIMIT,
                       field: FieldFilter = None, profile: ProfileFilter = None):
    """The devices the user may see, in id order, with last seen, battery and status."""
    access.require_role(user, *LISTERS, action="listing devices")
    cur = await conn.execute(_LIST, {"cursor": cursor, "field": field, "profile": profile,
                                     "limit": limit + 1, **access.who(user)})
    rows = await cur.fetchall()
    items = await _items(conn, rows[:limit], max_future_s=settings.max_future_s)
    return page(items + [{"id": r[0]} for r in rows[limit:]], limit)


@router.get("/devices/{device_id}", responses={
    200: {"content": {"application/json": {"example": {
        **_ITEM_EXAMPLE, "metrics": {"water_level": {
            "value": 0.043, "unit": "m", "measured_at": "2026-07-15T09:40:00+09:00",
            "age_s": 312.4, "status": "ok", "colour": "green", "device": "pw-0003"}}}}}},
    404: {"content": {"application/json": {"example": {"detail": "no device 'pw-9999'"}}}}})
async def device_detail(device_id: str, user: CurrentUser, conn: Conn, settings: SettingsDep):
    """One device as in the list, with the latest value of each of its metrics."""
    row = None
    if DEVICE_ID_RE.fullmatch(device_id):
        cur = await conn.execute(
            f"SELECT d.id, d.profile, d.field_id, d.owner, d.created_at, d.revoked_at "
            f"FROM devices d WHERE d.id = %(id)s AND {access.DEVICE_VISIBLE}",
            {"id": device_id, **access.who(user)})
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"no device {device_id[:64]!r}")
    item = (await _items(conn, [row], max_future_s=settings.max_future_s))[0]
    item["metrics"] = await conditions.latest_by_metric(conn, [(row[0], row[1])],
                                                        max_future_s=settings.max_future_s)
    return item
