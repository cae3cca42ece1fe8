"""Scheduled analytics, run once per schedule whichever process takes it.

Every ``agri analytics serve`` process (one or several, on any host) wakes up
every ``POLL_S`` seconds and:

- processes new images (``images`` rows still pending; each row is taken with
  ``FOR UPDATE SKIP LOCKED``, so two processes never take the same one), then
  reruns the day's analytics for the fields the image covers;
- from ``DAILY_HOUR`` local time, runs the day's analytics once: the process
  that inserts the ``analytics_runs`` row for (daily, today) runs it while
  holding a session advisory lock on it. A run left 'running' by a process
  that died is taken over by the next process that gets the lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import zlib
from collections.abc import Callable
from datetime import date, datetime

import orjson
import psycopg

from agri.clock import TZ

logger = logging.getLogger(__name__)

POLL_S = 60.0
DAILY_HOUR = 5  # local: after the night's readings, before farmers start the day
DAILY = "daily"
LOCK_NAMESPACE = 0x616E  # first key of the advisory lock; the second is the run's crc32


def taker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _lock_key(schedule: str, run_for: date) -> int:
    return zlib.crc32(f"{schedule}:{run_for.isoformat()}".encode()) & 0x7FFFFFFF


def run_once(conn: psycopg.Connection, schedule: str, run_for: date,
             work: Callable[[], dict], *, force: bool = False) -> dict | None:
    """Run ``work`` for (schedule, run_for) unless another process has done it or is
    doing it; returns its summary, or None when it was not ours to run. ``force``
    reruns a finished run (``agri analytics run``)."""
    key = _lock_key(schedule, run_for)
    got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, key)).fetchone()[0]
    conn.commit()
    if not got:
        return None
    try:
        with conn.transaction():
            row = conn.execute("SELECT status FROM analytics_runs WHERE schedule = %s AND "
                               "run_for = %s FOR UPDATE", (schedule, run_for)).fetchone()
            if row is not None and row[0] == "done" and not force:
                return None
            conn.execute(
                "INSERT INTO analytics_runs (schedule, run_for, status, taken_by) VALUES "
                "(%s, %s, 'running', %s) ON CONFLICT (schedule, run_for) DO UPDATE SET "
                "status = 'running', taken_by = EXCLUDED.taken_by, started_at = now(), "
                "finished_at = NULL, error = NULL", (schedule, run_for, taker()))
        try:
            summary = work()
        except Exception as exc:
            conn.rollback()
            logger.exception("%s run for %s failed", schedule, run_for)
            conn.execute("UPDATE analytics_runs SET status = 'failed', finished_at = now(), "
                         "error = left(%s, 2000) WHERE schedule = %s AND run_for = %s",
                         (f"{type(exc).__name__}: {exc}", schedule, run_for))
            conn.commit()
            raise
        conn.execute("UPDATE analytics_runs SET status = 'done', finished_at = now(), "
                     "summary = %s::jsonb WHERE schedule = %s AND run_for = %s",
                     (orjson.dumps(summary, default=str).decode(), schedule, run_for))
        conn.commit()
        return summary
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, key))
        conn.commit()


def due(now: datetime, *, hour: int = DAILY_HOUR) -> date | None:
    """The day whose daily run is due at ``now`` (local), or None before ``hour``."""
    local = now.astimezone(TZ)
    return local.date() if local.hour >= hour else None


def serve(url: str, *, stop: threading.Event, poll_s: float = POLL_S,
          hour: int = DAILY_HOUR, clock: Callable[[], datetime] | None = None) -> None:
    """The scheduler loop of ``agri analytics serve`` (returns when ``stop`` is set)."""
    from agri.analytics import pipeline

    clock = clock or (lambda: datetime.now(TZ))
    logger.info("analytics scheduler: daily run from %02d:00 %s, images every %.0f s",
                hour, TZ.key, poll_s)
    while not stop.is_set():
        try:
            with psycopg.connect(url) as conn:
                while not stop.is_set():
                    pipeline.process_pending_images(conn)
                    today = due(clock(), hour=hour)
                    if today is not None:
                        run_once(conn, DAILY, today,
                                 lambda d=today, c=conn: pipeline.daily(c, as_of=d))
                    stop.wait(poll_s)
        except psycopg.OperationalError as exc:
            logger.warning("analytics scheduler: database unavailable (%s); retrying", exc)
            stop.wait(min(poll_s, 10.0))
