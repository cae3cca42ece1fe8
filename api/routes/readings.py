"""Reading the data back: device and field series, field conditions, rejects."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import ORJSONResponse

from agri.api.deps import Conn, CurrentUser, SettingsDep
from agri.api.field_registry import FIELD_ID_RE
from agri.api.pagination import Cursor
from agri.api.queries import access, conditions, series
from agri.devices.profiles import METRICS, PROFILES
from agri.devices.topics import DEVICE_ID_RE
from agri.ingest.rejects import PAYLOAD_PREFIX_BYTES

router = APIRouter(prefix="/api/v1", tags=["readings"])

# Each route takes the user before its connection: the token lookup borrows a
# pool connection of its own and gives it back first, so concurrent requests
# never each hold one connection while waiting for a second.

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


BucketParam = Annotated[str | None, Query(
    max_length=16, description="raw (default), or a bucket width like 10m, 1h, 1d, 7d: "
    "whole days come from the daily rollup, whole hours from the hourly one",
    examples=["1d"])]
MetricParam = Annotated[str, Query(max_length=64, description="metric name",
                                   examples=["water_level"])]
_SERIES_EXAMPLE = {"metric": "water_level", "unit": "m", "bucket": "1d",
                   "source": "daily rollup", "start": "2026-07-01T00:00:00+09:00",
                   "end": "2026-07-03T00:00:00+09:00", "points": [
                       {"t": "2026-07-01T00:00:00+09:00", "min": 0.031, "max": 0.058,
                        "avg": 0.044, "count": 144},
                       {"t": "2026-07-02T00:00:00+09:00", "min": 0.029, "max": 0.052,
                        "avg": 0.041, "count": 97}]}
_SERIES_RESPONSES = {
    200: {"content": {"application/json": {"example": _SERIES_EXAMPLE}}},
    422: {"content": {"application/json": {"example": {
        "detail": "start to end spans 90.0 days; raw points and buckets under 1h reach at "
                  "most 31 days: narrow start/end or use bucket=1h or 1d"}}}}}


async def _series(conn, devices: list[str], metric: str, start, end, bucket):
    """Raw points (``bucket`` unset) or buckets; see api/queries/series.py for
    where each is answered from and how far a request may reach."""
    try:
        width = series.parse_bucket(bucket)
        series.check_range(start, end, width)
        if width is None:
            points = await series.raw_points(conn, devices=devices, metric=metric,
                                             start=start, end=end)
            source = series.RAW
        else:
            points, span, source = await series.bucket_points(
                conn, devices=devices, metric=metric, start=start, end=end, width=width)
            start, end = span.first, span.end
    except series.SeriesError as exc:
        raise HTTPException(422, str(exc)) from None
    # Encoded by orjson at once: FastAPI's generic encoding of a season's points
    # costs more than the query.
    return ORJSONResponse({"metric": metric, "unit": METRICS[metric].unit,
                           "bucket": series.bucket_name(width), "source": source,
                           "start": series.iso(start), "end": series.iso(end),
                           "points": points})


@router.get("/devices/{device_id}/series", responses=_SERIES_RESPONSES)
async def device_series(device_id: str, user: CurrentUser, conn: Conn, metric: MetricParam,
                        start: datetime | None = None, end: datetime | None = None,
                        bucket: BucketParam = None):
    """A device's readings of one metric between ``start`` (default: a day
    before ``end``) and ``end`` (default: now), raw or in buckets aligned to
    Asia/Tokyo days; the last bucket holds today's partial day. A bucketed
    answer covers the whole buckets the range touches (its ``start`` and
    ``end`` say which). Raw points and buckets under an hour reach 31 days,
    buckets of whole hours a year, of whole days five years (else 422)."""
    device = (await access.visible_device(conn, user, device_id)
              if DEVICE_ID_RE.fullmatch(device_id) else None)
    if device is None:
        raise HTTPException(404, f"no device {device_id[:64]!r}")
    if metric not in PROFILES[device[1]].metrics:
        raise HTTPException(422, f"profile {device[1]!r} has no metric {metric!r}; "
                                 f"choose one of {', '.join(PROFILES[device[1]].metrics)}")
    start, end = _range(start, end)
    return await _series(conn, [device_id], metric, start, end, bucket)


async def _field_devices(conn, user, field_id: str) -> list[tuple[str, str]]:
    """The devices on a visible field that the user may see (a developer: only
    their own); 404 for a field outside the user's scope."""
    if not FIELD_ID_RE.fullmatch(field_id) or \
            await access.visible_field(conn, user, field_id) is None:
        raise HTTPException(404, f"no field {field_id[:64]!r}")
    return await access.field_devices(conn, user, field_id)


@router.get("/fields/{field_id}/conditions", responses={
    200: {"content": {"application/json": {"example": {
        "field": "hirosaki-b01-03", "as_of": "2026-07-15T09:45:12+09:00", "metrics": {
            "water_level": {"value": 0.043, "unit": "m",
                            "measured_at": "2026-07-15T09:40:00+09:00", "age_s": 312.4,
                            "status": "ok", "colour": "green", "device": "pw-0003"},
            "battery": {"value": 17.0, "unit": "%EL", "measured_at": "2026-07-15T09:00:00+09:00",
                        "age_s": 2712.4, "status": "low", "colour": "yellow",
                        "device": "pw-0003"}}}}}},
    404: {"content": {"application/json": {"example": {"detail": "no field 'x'"}}}}})
async def field_conditions(field_id: str, user: CurrentUser, conn: Conn,
                           settings: SettingsDep):
    """The latest value of each metric on the field, by measurement time, of
    the devices there the user may see: its age, ``status`` (ok, stale,
    offline; a battery low or empty) and the ``colour`` it is shown in (see
    api/queries/conditions.py)."""
    devices = await _field_devices(conn, user, field_id)
    return {"field": field_id, "as_of": series.iso(datetime.now(UTC)),
            "metrics": await conditions.latest_by_metric(
                conn, devices, max_future_s=settings.max_future_s)}


@router.get("/fields/{field_id}/series", responses=_SERIES_RESPONSES)
async def field_series(field_id: str, user: CurrentUser, conn: Conn, metric: MetricParam,
                       start: datetime | None = None, end: datetime | None = None,
                       bucket: BucketParam = None):
    """As the device series, over the devices on the field that the user may
    see and that report ``metric`` (buckets take all of them together)."""
    if metric not in METRICS:
        raise HTTPException(422, f"unknown metric {metric[:64]!r}; choose one of "
                                 f"{', '.join(METRICS)}")
    devices = [d for d, p in await _field_devices(conn, user, field_id)
               if metric in PROFILES[p].metrics]
    start, end = _range(start, end)
    return await _series(conn, devices, metric, start, end, bucket)


@router.get("/rejects")
async def rejects(user: CurrentUser, conn: Conn, device: str | None = None,
                  cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=1000)] = PAGE):
    """What ingest turned away, newest first, with reasons. Each user sees the
    rejects of the devices they may see (access.REJECT_VISIBLE): an officer
    those of their region's fields, a developer their own devices'; rejects
    naming no known device only admins. A page ends after ``limit``
    items or once its payloads, reasons and topics reach PAGE_BYTES, whichever
    comes first; ``next`` is then the cursor of the following page. A payload
    is the prefix ingest kept (``payload_size`` and ``payload_sha256`` describe
    the whole payload as received)."""
    if user.role not in ("admin", "officer", "developer"):
        raise HTTPException(403, "rejects are for admins, officers and device developers")
    if device is not None and not DEVICE_ID_RE.fullmatch(device):
        return {"items": [], "next": None}  # no device has such an id
    cur = await conn.execute(
        f"""SELECT r.id, r.received_at, r.topic, r.device_id, r.reason, r.record_index,
                  substring(r.payload FROM 1 FOR %(prefix)s), r.payload_size, r.payload_sha256
           FROM rejects r
           WHERE (%(device)s::text IS NULL OR r.device_id = %(device)s)
             AND (%(cursor)s::bigint IS NULL OR r.id < %(cursor)s)
             AND {access.REJECT_VISIBLE}
           ORDER BY r.id DESC LIMIT %(limit)s""",
        {"device": device, "cursor": cursor, **access.who(user),
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
