"""The alerts service: evaluates new readings as they arrive (by arrival
time, from the cursor in alert_cursors), the scheduled rules about once a
minute, and delivers the messages that are due."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from agri.alerts import deliver, evaluate
from agri.clock import TZ
from agri.db import connect
from agri.settings import Settings

logger = logging.getLogger(__name__)

POLL_S = 0.5  # between looks for new readings
SCHEDULE_S = 60.0  # between runs of the scheduled rules
RETRY_S = 5.0  # after the database went away
CURSOR = "readings"
# Readings are read again this far behind the cursor: a batch committed after a
# later one still counts (judging a device twice changes nothing).
OVERLAP = timedelta(seconds=5)
# Readings measured longer than this before the cursor (a device's backlog) are
# judged by the schedule's rules only.
MEASURED_WITHIN = timedelta(days=1)

_NEW = """SELECT metric, array_agg(DISTINCT device_id), max(received_at) FROM readings
WHERE received_at > %(after)s AND time > %(after)s - %(within)s
GROUP BY metric"""


def read_cursor(conn: psycopg.Connection, *, now: datetime) -> datetime:
    row = conn.execute("SELECT position FROM alert_cursors WHERE name = %s",
                       (CURSOR,)).fetchone()
    return row[0] if row else now


def evaluate_new(conn: psycopg.Connection, *, now: datetime) -> int:
    """Judge the devices with readings that arrived since the cursor; move it.
    Returns how many (device, metric) pairs were judged."""
    with conn.transaction():
        position = read_cursor(conn, now=now)
        rows = conn.execute(_NEW, {"after": position - OVERLAP,
                                   "within": MEASURED_WITHIN}).fetchall()
        if not rows:
            return 0
        new = {metric: set(devices) for metric, devices, _ in rows}
        evaluate.on_readings(conn, new, now=now)
        latest = max(r[2] for r in rows)
        conn.execute("""INSERT INTO alert_cursors (name, position) VALUES (%s, %s)
                        ON CONFLICT (name) DO UPDATE
                        SET position = greatest(alert_cursors.position, excluded.position)""",
                     (CURSOR, latest))
    return sum(len(d) for d in new.values())


def run_once(conn: psycopg.Connection, settings: Settings, *, scheduled: bool) -> None:
    now = datetime.now(UTC)
    evaluate_new(conn, now=now)
    if scheduled:
        with conn.transaction():
            evaluate.scheduled(conn, now=now, today=now.astimezone(TZ).date())
    deliver.deliver_due(conn, settings, now=datetime.now(UTC))


def serve(settings: Settings, stop: threading.Event, *, poll_s: float = POLL_S,
          schedule_s: float = SCHEDULE_S) -> None:
    url = settings.db_url("alerts")
    conn = None
    next_schedule = 0.0
    logger.info("alerts service started")
    while not stop.is_set():
        try:
            if conn is None or conn.closed:
                conn = connect(url)
            scheduled = time.monotonic() >= next_schedule
            if scheduled:
                next_schedule = time.monotonic() + schedule_s
            run_once(conn, settings, scheduled=scheduled)
        except psycopg.OperationalError as exc:
            logger.warning("database unavailable (%s); trying again in %s s", exc, RETRY_S)
            if conn is not None:
                conn.close()
            conn = None
            stop.wait(RETRY_S)
            continue
        except Exception:  # a bad row must not stop the service
            logger.exception("evaluation failed; going on with the next round")
            if conn is not None and not conn.closed:
                conn.rollback()
        stop.wait(poll_s)
    if conn is not None:
        conn.close()
    logger.info("alerts service stopped")
