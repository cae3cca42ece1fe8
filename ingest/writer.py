"""Writes a batch in one transaction: readings by binary COPY into a staging
table, merged into the hypertable with ON CONFLICT DO NOTHING (a redelivered
reading is stored once); platform rollups get exactly the rows inserted;
rejects, device events and drone records beside them.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from agri.devices.topics import events_topic, flights_topic
from agri.ingest.batch import Batch

logger = logging.getLogger(__name__)

TIMESTAMPTZ_OID = 1184
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in microseconds since 1970
_INT64 = struct.Struct("!q").pack
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0

STAGE_DDL = """CREATE TEMP TABLE IF NOT EXISTS readings_stage (
    device_id text COLLATE "C", metric text COLLATE "C", time timestamptz, value float8,
    received_at timestamptz
) ON COMMIT DELETE ROWS"""

COLUMNS = "device_id, metric, time, value, received_at"
COPY_DIRECT = f"COPY readings ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_STAGE = f"COPY readings_stage ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
ROW_TYPES = ["text", "text", "timestamptz", "float8", "timestamptz"]

# Sorted keys: concurrent workers lock rollup rows in the same order.
_ROLLUP_FROM = """
hourly AS (
    INSERT INTO readings_hourly AS h (device_id, metric, bucket, min, max, sum, count)
    SELECT device_id, metric, date_trunc('hour', time), min(value), max(value), sum(value),
           count(*)
    FROM {src} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        min = least(h.min, excluded.min), max = greatest(h.max, excluded.max),
        sum = h.sum + excluded.sum, count = h.count + excluded.count
), daily AS (
    INSERT INTO readings_daily AS d (device_id, metric, day, min, max, sum, count)
    SELECT device_id, metric, (time AT TIME ZONE 'Asia/Tokyo')::date, min(value), max(value),
           sum(value), count(*)
    FROM {src} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (device_id, metric, day) DO UPDATE SET
        min = least(d.min, excluded.min), max = greatest(d.max, excluded.max),
        sum = d.sum + excluded.sum, count = d.count + excluded.count
)"""

# Slow path, when a batch holds readings stored before (redelivery): only the
# rows actually inserted reach the rollups, so they stay exact.
MERGE = f"""INSERT INTO readings ({COLUMNS}) SELECT {COLUMNS} FROM readings_stage
ON CONFLICT DO NOTHING"""
MERGE_WITH_ROLLUPS = f"""WITH ins AS (
    INSERT INTO readings ({COLUMNS}) SELECT {COLUMNS} FROM readings_stage
    ON CONFLICT DO NOTHING
    RETURNING device_id, metric, time, value
),{_ROLLUP_FROM.format(src="ins")}
SELECT count(*) FROM ins"""
# Fast path, after the whole batch went in by COPY: every row counts, and the
# batch's rollups are summed here in Python and upserted in two statements.
ROLLUP_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS hourly_stage (
    device_id text COLLATE "C", metric text COLLATE "C", bucket timestamptz,
    min float8, max float8, sum float8, count int8) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS daily_stage (
    device_id text COLLATE "C", metric text COLLATE "C", day int4,
    min float8, max float8, sum float8, count int8) ON COMMIT DELETE ROWS"""
COPY_HOURLY = "COPY hourly_stage FROM STDIN (FORMAT BINARY)"
COPY_DAILY = "COPY daily_stage FROM STDIN (FORMAT BINARY)"
HOURLY_TYPES = ["text", "text", "timestamptz", "float8", "float8", "float8", "int8"]
DAILY_TYPES = ["text", "text", "int4", "float8", "float8", "float8", "int8"]
UPSERT_ROLLUPS = """
INSERT INTO readings_hourly AS h (device_id, metric, bucket, min, max, sum, count)
SELECT * FROM hourly_stage ORDER BY 1, 2, 3
ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
    min = least(h.min, excluded.min), max = greatest(h.max, excluded.max),
    sum = h.sum + excluded.sum, count = h.count + excluded.count;
INSERT INTO readings_daily AS d (device_id, metric, day, min, max, sum, count)
SELECT device_id, metric, date '1970-01-01' + day, min, max, sum, count
FROM daily_stage ORDER BY 1, 2, 3
ON CONFLICT (device_id, metric, day) DO UPDATE SET
    min = least(d.min, excluded.min), max = greatest(d.max, excluded.max),
    sum = d.sum + excluded.sum, count = d.count + excluded.count"""
TOKYO_OFFSET_S = 9 * 3600  # Asia/Tokyo has no daylight saving time

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
        self._rollups = False

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            from agri.db import connect

            conn = connect(self.url)
            conn.adapters.register_dumper(EpochSeconds, EpochSecondsDumper)
            conn.execute(STAGE_DDL)
            conn.execute(ROLLUP_STAGE_DDL)
            row = conn.execute("SELECT enabled FROM platform_features "
                               "WHERE name = 'maintained_rollups'").fetchone()
            self._rollups = bool(row and row[0])
            conn.commit()
            self._conn = conn
        return self._conn

    def write(self, batch: Batch) -> Written:
        delay = RETRY_FIRST_S
        salvage = merge = False
        while True:
            try:
                return self._write_once(batch, salvage=salvage, merge=merge)
            except psycopg.errors.UniqueViolation:
                # A reading stored before (a redelivery) is in the batch: write
                # it again through the merge, which skips what is stored.
                merge = True
                continue
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

    def _write_once(self, batch: Batch, *, salvage: bool = False,
                    merge: bool = False) -> Written:
        conn = self._connection()
        try:
            # One transaction for the whole batch.
            with conn.transaction(), conn.cursor() as cur:
                stored = self._write_rows(cur, batch.rows, merge=merge) if batch.rows else 0
                rejects = list(batch.rejects)
                if salvage:
                    rejects = [_printable(r) for r in rejects]
                    rejects += _one_by_one(conn, INSERT_EVENT, batch.events, events_topic)
                    rejects += _one_by_one(conn, INSERT_FLIGHT, batch.flights, flights_topic)
                else:
                    if batch.events:
                        cur.executemany(INSERT_EVENT, batch.events)
                    if batch.flights:
                        cur.executemany(INSERT_FLIGHT, batch.flights)
                if rejects:
                    cur.executemany(INSERT_REJECT, rejects)
        except BaseException:
            if not conn.closed:
                try:
                    conn.rollback()
                except psycopg.Error:
                    conn.close()
            raise
        return Written(stored, len(batch.rows) - stored, len(rejects))

    def _write_rows(self, cur: psycopg.Cursor, rows: list, *, merge: bool) -> int:
        """Store readings; returns how many were new. Fast path: one COPY straight
        into the hypertable, which fails on the unique key if the batch holds a
        reading stored before (a redelivery); then the batch is written again
        with ``merge``: staged, and inserted with ON CONFLICT DO NOTHING."""
        if merge:
            copy_rows(cur, COPY_STAGE, rows)
            if not self._rollups:
                cur.execute(MERGE)
                return cur.rowcount
            cur.execute(MERGE_WITH_ROLLUPS)
            return cur.fetchone()[0]
        copy_rows(cur, COPY_DIRECT, rows)
        if self._rollups:
            hourly, daily = rollups(rows)
            copy_rows(cur, COPY_HOURLY, hourly, HOURLY_TYPES)
            copy_rows(cur, COPY_DAILY, daily, DAILY_TYPES)
            cur.execute(UPSERT_ROLLUPS)
        return len(rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class EpochSeconds(float):
    """Marker type: seconds since 1970, written as a timestamptz."""


class EpochSecondsDumper(Dumper):
    """Binary timestamptz from float seconds since 1970, without building a
    datetime per reading (PostgreSQL's timestamptz: microseconds since 2000)."""

    format = Format.BINARY
    oid = TIMESTAMPTZ_OID

    def dump(self, obj: float) -> bytes:
        return _INT64(round(obj * 1_000_000) - PG_EPOCH_US)


def rollups(rows: list) -> tuple[list[tuple], list[tuple]]:
    """Hourly and daily (Asia/Tokyo) min, max, sum and count of readings rows."""
    hours: dict[tuple, list] = {}
    for device_id, metric, t, value, _ in rows:
        key = (device_id, metric, t // 3600)
        agg = hours.get(key)
        if agg is None:
            hours[key] = [value, value, value, 1]
        else:
            if value < agg[0]:
                agg[0] = value
            elif value > agg[1]:
                agg[1] = value
            agg[2] += value
            agg[3] += 1
    days: dict[tuple, list] = {}
    for (device_id, metric, hour), (lo, hi, total, n) in hours.items():
        key = (device_id, metric, int((hour * 3600 + TOKYO_OFFSET_S) // 86400))
        agg = days.get(key)
        if agg is None:
            days[key] = [lo, hi, total, n]
        else:
            agg[0] = min(agg[0], lo)
            agg[1] = max(agg[1], hi)
            agg[2] += total
            agg[3] += n
    return ([(d, m, h * 3600.0, *a) for (d, m, h), a in hours.items()],
            [(d, m, day, *a) for (d, m, day), a in days.items()])


def copy_rows(cur: psycopg.Cursor, statement: str, rows: list,
              types: list[str] = ROW_TYPES) -> None:
    with cur.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _printable(reject: tuple) -> tuple:
    """A reject row PostgreSQL's text accepts (no NUL characters)."""
    received, topic, device_id, reason, index, payload = reject
    clean = [x.replace("\x00", "\\x00") if isinstance(x, str) else x
             for x in (topic, device_id, reason)]
    return (received, *clean, index, payload)


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
