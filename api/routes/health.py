"""Operator endpoints: /healthz and /metrics (Prometheus text format)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from psycopg import Error as DatabaseError

from agri.api import metrics as exposition
from agri.api.broker_probe import BrokerState
from agri.api.pools import Databases

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

# An ingest worker saves its counters every few seconds (ingest/stats.py,
# SAVE_EVERY_S) while it runs; one silent for longer than this is stale.
STALE_AFTER_S = 60.0

WORKERS_SQL = ("SELECT worker, extract(epoch FROM now() - updated_at), "
               "coalesce(counters->>'retired', '0') = '1' FROM ingest_stats ORDER BY worker")


@router.get("/healthz", responses={
    200: {"content": {"application/json": {"example": {
        "status": "ok", "failed": [], "database": "ok", "broker": "ok", "replica": "none",
        "ingest_workers": {"1": {"last_report_s": 1.2, "state": "ok"}},
        "stale_workers": {}}}}},
    503: {"description": "a part failed: named in `failed`", "content": {"application/json": {
        "example": {"status": "stale", "failed": ["ingest"], "database": "ok", "broker": "ok",
                    "replica": "none",
                    "ingest_workers": {"2": {"last_report_s": 312.0, "state": "stale"}},
                    "stale_workers": {"2": {"last_report_s": 312.0}}}}}}})
async def healthz(request: Request):
    """Judges the database, the MQTT broker and the ingest workers; 200 when
    all are well, else 503 with the parts that failed in ``failed``
    ("database", "broker", "ingest").

    ``status`` is "ok"; "stale" when only ingest failed: a worker that was
    not retired has not reported for STALE_AFTER_S (named in
    ``stale_workers`` with its age; retire a worker for good with `agri
    ingest --worker ID --retire`); "error" when the database or the broker
    failed. The database's error itself goes to the API's log, not to
    anonymous callers. ``broker`` is "ok", what went wrong, or "not
    configured" when the API was given no broker (AGRI_MQTT_URL); the broker
    is probed at most every few seconds. ``replica`` is the read replica's
    state: "none", "up" or "down" (reads then use the primary)."""
    databases: Databases = request.app.state.databases
    broker = await _broker(request)
    body: dict = {"status": "ok", "failed": [], "database": "ok",
                  "broker": broker.detail, "replica": databases.replica_state}
    if broker.up is False:
        body["failed"].append("broker")
    try:
        async with databases.connection(read=True) as conn:
            rows = await (await conn.execute(WORKERS_SQL)).fetchall()
    except DatabaseError as exc:
        logger.error("health check: database error: %s", exc)
        body["failed"].insert(0, "database")
        body["database"] = "database unavailable"
        body["status"] = "error"
        return JSONResponse(body, status_code=503)
    workers = {}
    stale = {}
    for worker, age, retired in rows:
        age = round(float(age), 1)
        state = "retired" if retired else "stale" if age > STALE_AFTER_S else "ok"
        workers[worker] = {"last_report_s": age, "state": state}
        if state == "stale":
            stale[worker] = {"last_report_s": age}
    if stale:
        body["failed"].append("ingest")
    body |= {"ingest_workers": workers, "stale_workers": stale}
    if body["failed"]:
        body["status"] = "error" if body["failed"] != ["ingest"] else "stale"
        return JSONResponse(body, status_code=503)
    return body


async def _broker(request: Request) -> BrokerState:
    check = getattr(request.app.state, "broker_check", None)
    if check is None:
        return BrokerState(None, "not configured (set AGRI_MQTT_URL)")
    return await check.state()


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {exposition.CONTENT_TYPE: {}},
          "description": "Prometheus text format"}})
async def metrics(request: Request) -> Response:
    """This API process's request latency (by route template, method and
    status class) and requests in flight, and every ingest worker's counters
    (``agri_ingest_*``, read from the database; ``agri_ingest_stats_up`` is 0
    when it did not answer)."""
    databases: Databases = request.app.state.databases
    rows = None
    try:
        async with databases.connection(read=True) as conn:
            rows = await (await conn.execute(exposition.INGEST_STATS_SQL)).fetchall()
    except DatabaseError as exc:
        logger.warning("metrics: ingest counters not read: %s", exc)
    return Response(exposition.exposition(request.app.state.http_metrics, rows),
                    media_type=exposition.CONTENT_TYPE)
