"""Writes a batch in one transaction: readings by binary COPY into a staging
table, merged into the hypertable with ON CONFLICT DO NOTHING (a redelivered
reading is stored once); platform rollups get exactly the rows inserted;
rejects, device events and drone records beside them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from agri.devices.topics import events_topic, flights_topic
from agri.ingest.batch import Batch

logger = logging.getLogger(__name__)

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0

STAGE_DDL = """CREATE TEMP TABLE IF NOT EXISTS readings_stage (
    device_id text, metric text, t float8, value float8, received float8
) ON COMMIT DELETE ROWS"""

COPY_STAGE = ("COPY readings_stage (device_id, metric, t, value, received) "
              "FROM STDIN (FORMAT BINARY)")
STAGE_TYPES = ["text", "text", "float8", "float8", "float8"]

MERGE = """INSERT INTO readings (device_id, metric, time, value, received_at)
SELECT device_id, metric, to_timestamp(t), value, to_timestamp(received) FROM readings_stage
ON CONFLICT DO NOTHING"""

# Rollups get only the rows this statement inserted, so they stay exact
# whatever is redelivered. Keys are sorted so that concurrent workers lock
# rollup rows in the same order.
MERGE_WITH_ROLLUPS = """WITH ins AS (
    INSERT INTO readings (device_id, metric, time, value, received_at)
    SELECT device_id, metric, to_timestamp(t), value, to_timestamp(received) FROM readings_stage
    ON CONFLICT DO NOTHING
    RETURNING device_id, metric, time, value
), hourly AS (
    INSERT INTO readings_hourly AS h (device_id, metric, bucket, min, max, sum, count)
    SELECT device_id, metric, date_trunc('hour', time), min(value), max(value), sum(value),
           count(*)
    FROM ins GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        min = least(h.min, excluded.min), max = greatest(h.max, excluded.max),
        sum = h.sum + excluded.sum, count = h.count + excluded.count
), daily AS (
    INSERT INTO readings_daily AS d (device_id, metric, day, min, max, sum, count)
    SELECT device_id, metric, (time AT TIME ZONE 'Asia/Tokyo')::date, min(value), max(value),
           sum(value), count(*)
    FROM ins GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (device_id, metric, day) DO UPDATE SET
        min = least(d.min, excluded.min), max = greatest(d.max, excluded.max),
        sum = d.sum + excluded.sum, count = d.count + excluded.count
)
SELECT count(*) FROM ins"""

INSERT_REJECT = """INSERT INTO rejects
    (received_at, topic, device_id, reason, record_index, payload)
VALUES (to_timestamp(%s), %s, %s, %s, %s, %s)"""

INSERT_EVENT = """INSERT INTO device_events (device_id, time, kind, body, received_at)
VALUES (%s, to_timestamp(%s), %s, %s::jsonb, to_timestamp(%s)) ON CONFLICT DO NOTHING"""

INSERT_FLIGHT = """INSERT INTO drone_records (drone_id, time, kind, field_id, body, received_at)
VALUES (%s, to_timestamp(%s), %s, %s, %s::jsonb, to_timestamp(%s)) ON CONFLICT DO NOTHING"""


@dataclass(frozen=True, slots=True)
class Written:
    stored: int
    duplicate: int
    rejected: int


class Writer:
    """One connection, reopened after failures; ``write`` retries until the
    batch is committed, so a database outage delays but never loses data."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None
        self._merge = MERGE

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            from agri.db import connect

            conn = connect(self.url)
            conn.execute(STAGE_DDL)
            row = conn.execute("SELECT enabled FROM platform_features "
                               "WHERE name = 'maintained_rollups'").fetchone()
            self._merge = MERGE_WITH_ROLLUPS if row and row[0] else MERGE
            conn.commit()
            self._conn = conn
        return self._conn

    def write(self, batch: Batch) -> Written:
        delay = RETRY_FIRST_S
        salvage = False
        while True:
            try:
                return self._write_once(batch, salvage=salvage)
            except psycopg.OperationalError as exc:
                logger.warning("database write failed (%s); retrying in %.1f s", exc, delay)
            except psycopg.errors.DeadlockDetected:
                logger.info("deadlock with another worker; retrying the batch")
            except psycopg.Error as exc:
                if salvage:
                    raise
                # Something in the batch the database refuses (e.g. a NUL in an
                # event's text): write events and drone records one by one.
                logger.warning("database refused part of a batch (%s); salvaging", exc)
                salvage = True
                continue
            self.close()
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _write_once(self, batch: Batch, *, salvage: bool = False) -> Written:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                stored = 0
                if batch.rows:
                    with cur.copy(COPY_STAGE) as copy:
                        copy.set_types(STAGE_TYPES)
                        for row in batch.rows:
                            copy.write_row(row)
                    cur.execute(self._merge)
                    stored = cur.fetchone()[0] if self._merge is MERGE_WITH_ROLLUPS \
                        else cur.rowcount
                rejects = list(batch.rejects)
                if salvage:
                    rejects += _one_by_one(conn, INSERT_EVENT, batch.events, events_topic)
                    rejects += _one_by_one(conn, INSERT_FLIGHT, batch.flights, flights_topic)
                else:
                    if batch.events:
                        cur.executemany(INSERT_EVENT, batch.events)
                    if batch.flights:
                        cur.executemany(INSERT_FLIGHT, batch.flights)
                if rejects:
                    cur.executemany(INSERT_REJECT, rejects)
            conn.commit()
        except BaseException:
            if not conn.closed:
                try:
                    conn.rollback()
                except psycopg.Error:
                    conn.close()
            raise
        return Written(stored, len(batch.rows) - stored, len(rejects))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _one_by_one(conn: psycopg.Connection, statement: str, rows: list[tuple],
                topic: Callable[[str], str]) -> list[tuple]:
    """Insert rows each in a savepoint; the refused ones come back as rejects."""
    refused = []
    for row in rows:
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(statement, row)
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            received = row[-1]
            reason = f"database refused the record: {exc}".strip()
            refused.append((received, topic(row[0]), row[0], reason, None, str(row[-2]).encode()))
    return refused
