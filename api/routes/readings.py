"""Reading the data back: device and field series, field conditions, rejects."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from agri.api.deps import Conn, CurrentUser, SettingsDep
from agri.api.pagination import Cursor
from agri.api.queries import access, conditions, series
from agri.devices.profiles import METRICS, PROFILES
from agri.ingest.rejects import PAYLOAD_PREFIX_BYTES

router = APIRouter(prefix="/api/v1", tags=["readings"])

DEFAULT_RANGE = timedelta(days=1)
PAGE = 100
PAGE_BYTES = 1024 * 1024  # of reject payloads, reasons and topics in one page


def _range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} needs a UTC offset, e.g. 2025-07-01T00:00:00+09:00")
    end = end or datetime.now(UTC)
    start = start or end - DEFAULT_RANGE
    if start >= end:
        raise HTTPException(422, "start must be before end")
    return start, end


async def _series(conn, devices: list[str], metric: str, start, end, bucket):
    try:
        width = series.parse_bucket(bucket)
        if width is None:
            points = await series.raw_points(conn, devices=devices, metric=metric,
                                             start=start, end=end)
        else:
            points = await series.bucket_points(conn, devices=devices, metric=metric,
                                                start=start, end=end, width=width)
    except series.SeriesError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"metric": metric, "unit": METRICS[metric].unit, "points": points}


@router.get("/devices/{device_id}/series")
async def device_series(device_id: str, conn: Conn, user: CurrentUser,
                        metric: Annotated[str, Query(description="metric name")],
                        start: datetime | None = None, end: datetime | None = None,
                        bucket: str | None = None):
    device = await access.visible_device(conn, user, device_id)
    if device is None:
        raise HTTPException(404, f"no device {device_id!r}")
    if metric not in PROFILES[device[1]].metrics:
        raise HTTPException(422, f"profile {device[1]!r} has no metric {metric!r}; "
                                 f"choose one of {', '.join(PROFILES[device[1]].metrics)}")
    start, end = _range(start, end)
    return await _series(conn, [device_id], metric, start, end, bucket)


async def _field_devices(conn, user, field_id: str) -> list[tuple[str, str]]:
    if await access.visible_field(conn, user, field_id) is None:
        raise HTTPException(404, f"no field {field_id!r}")
    cur = await conn.execute(
        "SELECT id, profile FROM devices WHERE field_id = %s ORDER BY id", (field_id,))
    return await cur.fetchall()


@router.get("/fields/{field_id}/conditions")
async def field_conditions(field_id: str, conn: Conn, user: CurrentUser,
                           settings: SettingsDep):
    devices = await _field_devices(conn, user, field_id)
    return {"field": field_id, "metrics": await conditions.latest_by_metric(
        conn, devices, max_future_s=settings.max_future_s)}


@router.get("/fields/{field_id}/series")
async def field_series(field_id: str, conn: Conn, user: CurrentUser,
                       metric: Annotated[str, Query(description="metric name")],
                       start: datetime | None = None, end: datetime | None = None,
                       bucket: str | None = None):
    devices = [d for d, p in await _field_devices(conn, user, field_id)
               if metric in PROFILES[p].metrics]
    if metric not in METRICS:
        raise HTTPException(422, f"unknown metric {metric!r}")
    start, end = _range(start, end)
    return await _series(conn, devices, metric, start, end, bucket)


@router.get("/rejects")
async def rejects(conn: Conn, user: CurrentUser, device: str | None = None,
                  cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=1000)] = PAGE):
    """What ingest turned away, newest first, with reasons. Admins and officers
    see all; developers see their own devices. A page ends after ``limit``
    items or once its payloads, reasons and topics reach PAGE_BYTES, whichever
    comes first; ``next`` is then the cursor of the following page. A payload
    is the prefix ingest kept (``payload_size`` and ``payload_sha256`` describe
    the whole payload as received)."""
    if user.role not in ("admin", "officer", "developer"):
        raise HTTPException(403, "rejects are for admins, officers and device developers")
    own = user.role == "developer"
    cur = await conn.execute(
        """SELECT r.id, r.received_at, r.topic, r.device_id, r.reason, r.record_index,
                  substring(r.payload FROM 1 FOR %(prefix)s), r.payload_size, r.payload_sha256
           FROM rejects r
           WHERE (%(device)s::text IS NULL OR r.device_id = %(device)s)
             AND (%(cursor)s::bigint IS NULL OR r.id < %(cursor)s)
             AND (NOT %(own)s OR EXISTS (SELECT 1 FROM devices d
                                         WHERE d.id = r.device_id AND d.owner = %(user)s))
           ORDER BY r.id DESC LIMIT %(limit)s""",
        {"device": device, "cursor": cursor, "own": own, "user": user.name,
         "limit": limit + 1, "prefix": PAYLOAD_PREFIX_BYTES})
    rows = await cur.fetchall()
    items: list[dict] = []
    size = 0
    for row in rows[:limit]:
        size += len(row[6]) + len(row[4]) + len(row[2])
        if items and size > PAGE_BYTES:
            break
        items.append(_reject_item(row))
    more = len(items) < len(rows)
    return {"items": items, "next": items[-1]["id"] if more else None}


def _text(payload: bytes, *, truncated: bool) -> tuple[str, str]:
    """The payload as text when it is UTF-8 (a prefix may end inside a
    character), else base64."""
    for cut in range(4 if truncated else 1):
        try:
            return payload[:len(payload) - cut].decode("utf-8"), "text"
        except UnicodeDecodeError:
            continue
    return base64.b64encode(payload).decode(), "base64"


def _reject_item(row) -> dict:
    rid, received_at, topic, device_id, reason, index, payload, size, sha256 = row
    body, encoding = _text(bytes(payload), truncated=len(payload) < size)
    return {"id": rid, "received_at": series.iso(received_at), "topic": topic,
            "device_id": device_id, "reason": reason, "record_index": index,
            "payload": body, "payload_encoding": encoding, "payload_size": size,
            "payload_sha256": bytes(sha256).hex(), "payload_truncated": len(payload) < size}
