"""Operator endpoints: /healthz and /metrics (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from psycopg import Error as DatabaseError

from agri.api.deps import Conn
from agri.ingest.service import AGE_BUCKETS
from agri.ingest.stats import COUNTERS, GAUGES

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(conn: Conn):
    try:
        cur = await conn.execute(
            "SELECT worker, extract(epoch FROM now() - updated_at) FROM ingest_stats")
        workers = {w: {"last_report_s": round(float(age), 1)} for w, age in await cur.fetchall()}
    except DatabaseError as exc:
        return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
    return {"status": "ok", "database": "ok", "ingest_workers": workers}


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
