"""Devices: the list a user may see and one device, each with when it was
last heard (its latest measurement time), its latest battery reading and a
status (api/queries/conditions.py): ``ok``, ``stale``, ``offline``,
``never`` (nothing stored yet) or ``revoked``, with the colour it is shown in.

Lists are for farmers, officers, developers and admins; a planner gets 403
(planners see aggregates only). Who sees which device is
access.DEVICE_VISIBLE: a developer only their own devices, also on a field
shared with others. Lists are in id order; ``next`` is the id of a page's
last device, passed back as ``cursor``.

Admins register devices in bulk with ``POST /devices/import``, as
``agri devices import`` does (devices/device_import.py): all or none, each
bad row named in a 422, each password answered once. The API needs the
broker's dynamic-security admin account (AGRI_MQTT_URL) and a database login
that may insert devices; without them it answers 503 and imports nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from agri.api.accounts import Role
from agri.api.deps import Conn, CurrentUser, SettingsDep, UploadingUser
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import DEFAULT_LIMIT, Limit, page
from agri.api.queries import access, conditions
from agri.api.queries.series import iso
from agri.db import connect
from agri.devices import broker_accounts, device_import, provisioning, registry
from agri.devices.dynsec import DynSecError
from agri.devices.profiles import METRICS, PROFILES
from agri.devices.topics import DEVICE_ID_RE
from agri.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

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


MAX_VALUE = device_import.MAX_VALUE_CHARS
# Devices per request: 1,000 take some 20 s (the broker's accounts, see
# devices/device_import.py); more go through agri devices import.
MAX_API_ROWS = 1_000


class ImportRow(BaseModel):
    """One device: as a line of the CSV of ``agri devices import``."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(max_length=MAX_VALUE, description="device id: 1-64 letters, digits, _ "
                    "or -, not starting with agri-; also its MQTT username and client id")
    profile: str = Field(max_length=MAX_VALUE, description=f"one of {', '.join(PROFILES)}")
    field: str | None = Field(default=None, max_length=MAX_VALUE,
                              description="the field it is on (an imported field's id)")
    owner: str | None = Field(default=None, max_length=MAX_VALUE,
                              description="the user who owns it (a developer or farmer)")
    dev_eui: str | None = Field(default=None, max_length=MAX_VALUE,
                                description="LoRaWAN DevEUI, 16 hexadecimal digits")
    bridge: str | None = Field(default=None, max_length=MAX_VALUE,
                               description="the LoRaWAN bridge its uplinks come through "
                                           "(agri bridges add); it then gets no MQTT account")


class DeviceImport(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"devices": [
        {"id": "pw-0101", "profile": "paddy-water", "field": "hirosaki-b01-03",
         "owner": None, "dev_eui": "70b3d57ed0051a2c"},
        {"id": "ws-0102", "profile": "weather-station"}]}]})
    devices: list[ImportRow] = Field(min_length=1, max_length=MAX_API_ROWS)


class Unavailable(RuntimeError):
    """This API process cannot register devices; the message says why."""


_NO_BROKER = ("this API has no broker admin account, so it cannot create the devices' MQTT "
              "accounts: import with agri devices import, or give the API the broker's "
              "dynamic-security admin in AGRI_MQTT_URL; nothing was imported")
_NO_GRANT = ("this API's database login may not register devices: import with agri devices "
             "import, or grant it INSERT on devices; nothing was imported")


def _import(settings: Settings, rows: list[device_import.Row]) -> list[tuple[str, str]]:
    """Check, then register (blocking: the broker client and the registry's
    transaction are synchronous)."""
    with connect(settings.db_url("api")) as conn:
        device_import.check(conn, rows, unit="devices")
        if not registry.may_register(conn):
            raise Unavailable(_NO_GRANT)
        try:
            admin = broker_accounts.admin_url(settings.broker_url("admin"))
        except (SettingsError, broker_accounts.BrokerAccountError, OSError):
            raise Unavailable(_NO_BROKER) from None
        return provisioning.import_devices(conn, admin, [r.device() for r in rows],
                                           [r.bridge for r in rows])


def _row(index: int, row: ImportRow) -> device_import.Row:
    return device_import.Row(index, row.id, row.profile, row.field or None, row.owner or None,
                             row.dev_eui or None, row.bridge or None)


def _detail(exc: device_import.ImportRejected) -> list[dict]:
    """Row errors as FastAPI's own 422 has them: ``loc`` names the row and column."""
    out = [{"loc": ["body", "devices", *([] if e.line is None else [e.line]),
                    *([e.column] if e.column else [])],
            "msg": e.message, "type": "value_error"} for e in exc.errors]
    if exc.total > len(exc.errors):
        out.append({"loc": ["body", "devices"], "type": "value_error",
                    "msg": f"... and {exc.total - len(exc.errors)} more; nothing was imported"})
    return out


@router.post("/devices/import", status_code=201, responses={
    201: {"description": "every device registered with its MQTT account; the passwords are "
                         "shown this once",
          "content": {"application/json": {"example": {"imported": 1, "devices": [
              {"device_id": "pw-0101", "username": "pw-0101",
               "password": "Qm9vX2ZpZWxkLXNlbnNvcg", "bridge": None}]}}}},
    403: {"description": "not an admin", "content": {"application/json": {"example": {
        "detail": "importing devices is for admin; you are signed in as farmer"}}}},
    409: {"description": "another import or registration took an id meanwhile, or an id is a "
                         "broker account that is not a device's; nothing was imported"},
    422: {"description": "bad rows, each named by its index and column; nothing was imported",
          "content": {"application/json": {"example": {"detail": [
              {"loc": ["body", "devices", 1, "profile"], "type": "value_error",
               "msg": "unknown profile 'radar'; choose one of: paddy-water, weather-station, "
                      "soil, drone, water-gate"}]}}}},
    503: {"description": "this API has no broker admin account or may not register devices "
                         "(import with agri devices import), or the broker did not answer; "
                         "nothing was imported"}})
async def import_devices(body: DeviceImport, user: UploadingUser, settings: SettingsDep,
                         response: Response):
    """Register devices in bulk, all or none, as `agri devices import` does:
    one bad row imports nothing, and the 422 names each. Each device gets an
    MQTT account (its id as username and client id) whose password is in
    this answer only; a device behind a LoRaWAN bridge gets none (its
    username and password are null). Admins only."""
    access.require_role(user, Role.ADMIN, action="importing devices")
    rows = [_row(i, r) for i, r in enumerate(body.devices)]
    try:
        imported = await run_in_threadpool(_import, settings, rows)
    except device_import.ImportRejected as exc:
        raise HTTPException(422, _detail(exc)) from None
    except Unavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except registry.RegistryError as exc:
        raise HTTPException(409, str(exc)) from None
    except broker_accounts.BrokerAccountError as exc:
        raise HTTPException(409, f"{exc}; nothing was imported") from None
    except DynSecError as exc:
        logger.warning("device import by %s: the broker refused: %s", user.name, exc)
        raise HTTPException(503, "the broker did not take the devices' accounts; nothing was "
                                 "imported: try again shortly") from None
    logger.info("%s imported %d devices", user.name, len(imported))
    response.headers["Cache-Control"] = "no-store"
    return {"imported": len(imported), "devices": device_import.credentials(rows, imported)}
