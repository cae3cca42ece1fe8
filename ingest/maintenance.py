"""Periodic upkeep that must run once whichever worker takes it: dropping raw
readings past the retention period (rollups are kept).

Ingest does not own the readings hypertable, so it cannot call
``drop_chunks`` itself: it calls ``drop_old_readings(interval)``, a function
of migration 004 that runs with the owner's rights and only drops raw
readings at least a day old."""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg

logger = logging.getLogger(__name__)

RETENTION_LOCK_ID = 0x61677272  # advisory lock: one worker at a time
EVERY_S = 3600.0


def drop_old_readings(conn: psycopg.Connection, *, keep_days: int) -> int:
    """Drop raw reading chunks older than ``keep_days``; returns chunks dropped,
    or -1 when another worker holds the lock."""
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                              (RETENTION_LOCK_ID,)).fetchone()[0]
        if not locked:
            return -1
        dropped = conn.execute("SELECT drop_old_readings(%s)",
                               (timedelta(days=keep_days),)).fetchone()[0]
    if dropped:
        logger.info("retention: dropped %d chunks of raw readings older than %d days",
                    dropped, keep_days)
    return dropped
