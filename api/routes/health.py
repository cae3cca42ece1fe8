"""Operator endpoints: /healthz and /metrics (Prometheus text format)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from psycopg import Error as DatabaseError

from agri.api.deps import Conn
from agri.ingest.service import AGE_BUCKETS
from agri.ingest.stats import COUNTERS, GAUGES

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

# An ingest worker saves its counters every few seconds (ingest/stats.py,
# SAVE_EVERY_S) while it runs; one silent for longer than this is stale.
STALE_AFTER_S = 60.0


@router.get("/healthz")
async def healthz(conn: Conn, request: Request):
    """``status`` "ok", or "stale" when an ingest worker that was not retired
    has not reported for STALE_AFTER_S (named in ``stale_workers`` with its
    age); 503 with "database unavailable" when the database does not answer
    (the error itself goes to the API's log, not to anonymous callers)."""
    try:
        cur = await conn.execute(
            "SELECT worker, extract(epoch FROM now() - updated_at), "
            "coalesce(counters->>'retired', '0') = '1' FROM ingest_stats ORDER BY worker")
        rows = await cur.fetchall()
    except DatabaseError as exc:
        logger.error("health check: database error: %s", exc)
        return JSONResponse({"status": "error", "database": "database unavailable"},
                            status_code=503)
    workers = {}
    stale = {}
    for worker, age, retired in rows:
        age = round(float(age), 1)
        state = "retired" if retired else "stale" if age > STALE_AFTER_S else "ok"
        workers[worker] = {"last_report_s": age, "state": state}
        if state == "stale":
            stale[worker] = {"last_report_s": age}
    return {"status": "stale" if stale else "ok", "database": "ok",
            "replica": request.app.state.databases.replica_state, "ingest_workers": workers,
            "stale_workers": stale}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(conn: Conn) -> str:
    cur = await conn.execute("SELECT worker, counters FROM ingest_stats ORDER BY worker")
    rows = await cur.fetchall()
    out: list[str] = []
    for name in COUNTERS:
        metric = f"agri_ingest_{name}_total"
        out += [f"# TYPE {metric} counter"]
        out += [f'{metric}{{worker="{w}"}} {c.get(name, 0):g}' for w, c in rows]
    for name in GAUGES:
        metric = f"agri_ingest_{name}"
        out += [f"# TYPE {metric} gauge"]
        out += [f'{metric}{{worker="{w}"}} {c.get(name, 0):g}' for w, c in rows]
    metric = "agri_ingest_reading_age_at_commit_seconds"
    out.append(f"# TYPE {metric} histogram")
    for w, c in rows:
        counts = c.get("age_histogram") or [0] * len(AGE_BUCKETS)
        total = 0
        for le, n in zip(AGE_BUCKETS, counts, strict=False):
            total += n
            label = "+Inf" if le == float("inf") else f"{le:g}"
            out.append(f'{metric}_bucket{{worker="{w}",le="{label}"}} {total}')
        out.append(f'{metric}_count{{worker="{w}"}} {total}')
    return "\n".join(out) + "\n"
