"""Writes a batch in one transaction: readings by binary COPY straight into
the hypertable, or, when the batch holds a reading stored before (a
redelivery), staged and merged with ON CONFLICT DO NOTHING so it is stored
once; platform rollups get exactly the rows inserted; rejects, device
events and drone records beside them.

A reading whose key (device, metric, time) is stored already with a
different value is a conflict: the value stored first is kept, the other
counted and logged. When the database refuses a batch for a reason other
than a lost connection, the batch is tried again a bounded number of times
and then written message by message (bisecting), so that the message it
refuses becomes a reject and the rest is stored.
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

from agri.clock import TIME_ZONE, UTC_OFFSET_S
from agri.devices.topics import events_topic, flights_topic
from agri.ingest import rejects
from agri.ingest.batch import Batch

logger = logging.getLogger(__name__)

TIMESTAMPTZ_OID = 1184
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in microseconds since 1970
_INT64 = struct.Struct("!q").pack
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
# Tries of a batch the database refuses (not a lost connection) before it is
# written message by message; the second and later tries write events and
# drone records one by one.
MAX_REFUSALS = 3
# Deadlocks or serialization failures in a row that are retried as they are;
# beyond, they count as refusals.
MAX_ROLLBACKS = 10
CONFLICTS_LOGGED = 10  # conflicting readings logged one by one per batch

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
    SELECT device_id, metric, (time AT TIME ZONE %(tz)s)::date, min(value), max(value),
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
CONFLICTS = """SELECT s.device_id, s.metric, extract(epoch FROM s.time), r.value, s.value
FROM readings_stage s JOIN readings r
  ON r.device_id = s.device_id AND r.metric = s.metric AND r.time = s.time
WHERE r.value <> s.value"""

INSERT_REJECT = """INSERT INTO rejects
    (received_at, topic, device_id, reason, record_index, payload, payload_size, payload_sha256)
VALUES (to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s)"""

INSERT_EVENT = """INSERT INTO device_events (device_id, time, kind, body, received_at)
VALUES (%s, to_timestamp(%s), %s, %s::jsonb, to_timestamp(%s)) ON CONFLICT DO NOTHING"""

INSERT_FLIGHT = """INSERT INTO drone_records (drone_id, time, kind, field_id, body, received_at)
VALUES (%s, to_timestamp(%s), %s, %s, %s::jsonb, to_timestamp(%s)) ON CONFLICT DO NOTHING"""


@dataclass(frozen=True, slots=True)
class Written:
    """What a batch made in the database."""

    stored: int = 0  # readings inserted
    duplicate: int = 0  # readings stored before with the same value (or twice in the batch)
    conflict: int = 0  # readings stored before with another value (the first is kept)
    rejected: int = 0  # reject rows
    events_stored: int = 0  # device events and drone records inserted
    events_duplicate: int = 0  # ... stored before
    refused: int = 0  # messages the database refused, stored as rejects

    def __add__(self, other: Written) -> Written:
        return Written(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))


def _fields(w: Written) -> tuple[int, ...]:
    return (w.stored, w.duplicate, w.conflict, w.rejected, w.events_stored,
            w.events_duplicate, w.refused)


class WriteError(RuntimeError):
    """The database refuses even the rejects of a batch: ingest cannot go on
    without losing data. Fix the database (see the error), then restart the
    worker: the batch's messages were not acknowledged and come again."""


OUTAGE, TRANSIENT, REFUSED = "outage", "transient", "refused"


def classify(exc: psycopg.Error, conn: psycopg.Connection | None) -> str:
    """OUTAGE: the connection or the server is away (retried until it is back);
    TRANSIENT: a deadlock or serialization failure (retried, bounded); REFUSED:
    the database refuses this batch's content or the schema changed."""
    if conn is None or conn.closed:
        return OUTAGE
    state = exc.sqlstate
    if state is None:  # raised by the client: no server answer, or a value it cannot send
        return OUTAGE if isinstance(exc, psycopg.OperationalError) else REFUSED
    if state[:2] in ("08", "53", "58") or state in ("57P01", "57P02", "57P03", "57014"):
        return OUTAGE  # connection, resources (disk full), I/O, shutdown, statement timeout
    if state[:2] == "40" or state == "55P03":
        return TRANSIENT  # deadlock, serialization failure, lock not available
    return REFUSED


class Writer:
    """One connection, reopened after failures. ``write`` returns once the batch
    is committed: a database outage delays it but never loses data; what the
    database refuses ends up in rejects, or raises WriteError."""

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
        refusals = rollbacks = 0
        merge = False
        while True:
            try:
                if refusals >= MAX_REFUSALS:
                    return self._write_by_message(batch)
                return self._write_once(batch, salvage=refusals > 0, merge=merge)
            except psycopg.errors.UniqueViolation as exc:
                if not merge:
                    # A reading stored before (a redelivery) is in the batch:
                    # write it again through the merge, which skips what is stored.
                    merge = True
                    continue
                what, error = REFUSED, exc
            except psycopg.Error as exc:
                what, error = classify(exc, self._conn), exc
            if what == OUTAGE:
                logger.warning("database write failed (%s); retrying in %.1f s", error, delay)
                self.close()
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
            elif what == TRANSIENT and rollbacks < MAX_ROLLBACKS:
                rollbacks += 1
                logger.info("batch rolled back (%s); retrying", error)
            elif refusals >= MAX_REFUSALS:
                raise WriteError(f"the database refuses the rejects of a batch: {error}") \
                    from error
            else:
                refusals += 1
                logger.warning("database refused a batch of %d messages (%s); %s", batch.messages,
                               error, "writing it message by message"
                               if refusals >= MAX_REFUSALS else "trying again")

    def _write_once(self, batch: Batch, *, salvage: bool = False,
                    merge: bool = False) -> Written:
        """The whole batch in one transaction."""
        conn = self._connection()
        try:
            with conn.transaction():
                return self._write_in(conn, batch, salvage=salvage, merge=merge)
        except BaseException:
            self._rollback(conn)
            raise

    def _write_by_message(self, batch: Batch) -> Written:
        """One transaction, each share of messages in a savepoint, halved until
        the messages the database refuses are alone; they become rejects."""
        if not batch.sources:
            raise WriteError("the database refuses a batch without message boundaries")
        conn = self._connection()
        try:
            with conn.transaction():
                written, refused = self._write_parts(conn, batch, 0, batch.messages)
                rows = []
                for index, error in refused:
                    received, topic, device_id, payload = batch.sources[index]
                    logger.warning("database refused the message on %s: %s", topic[:200], error)
                    rows.append(rejects.stored((
                        received, topic, device_id,
                        f"the database refused this message: {error}".strip(), None, payload),
                        printable=True))
                if rows:
                    with conn.cursor() as cur:
                        cur.executemany(INSERT_REJECT, rows)
        except BaseException:
            self._rollback(conn)
            raise
        return written + Written(rejected=len(refused), refused=len(refused))

    def _write_parts(self, conn: psycopg.Connection, batch: Batch, first: int, last: int
                     ) -> tuple[Written, list[tuple[int, psycopg.Error]]]:
        try:
            with conn.transaction():
                return self._write_in(conn, batch.part(first, last), salvage=True,
                                      merge=True), []
        except psycopg.Error as exc:
            if classify(exc, conn) != REFUSED:
                raise
            if last - first == 1:
                return Written(), [(first, exc)]
        middle = (first + last) // 2
        a, refused_a = self._write_parts(conn, batch, first, middle)
        b, refused_b = self._write_parts(conn, batch, middle, last)
        return a + b, refused_a + refused_b

    def _write_in(self, conn: psycopg.Connection, batch: Batch, *, salvage: bool,
                  merge: bool) -> Written:
        """Write ``batch`` inside the caller's transaction."""
        with conn.cursor() as cur:
            stored = duplicate = conflict = 0
            if batch.rows:
                stored, conflict = self._write_rows(cur, batch.rows, merge=merge)
                duplicate = len(batch.rows) - stored - conflict
            rows = [rejects.stored(r, printable=salvage) for r in batch.rejects]
            events = len(batch.events) + len(batch.flights)
            if salvage:
                # Something in the batch the database refuses (e.g. a NUL in an
                # event's text): events and drone records one by one.
                new, refused = _one_by_one(conn, INSERT_EVENT, batch.events, events_topic)
                new2, refused2 = _one_by_one(conn, INSERT_FLIGHT, batch.flights, flights_topic)
                inserted = new + new2
                rows += [rejects.stored(r, printable=True) for r in refused + refused2]
                events -= len(refused) + len(refused2)
            else:
                inserted = _insert_all(cur, INSERT_EVENT, batch.events)
                inserted += _insert_all(cur, INSERT_FLIGHT, batch.flights)
            if rows:
                cur.executemany(INSERT_REJECT, rows)
        return Written(stored, duplicate, conflict, len(rows), inserted, events - inserted)

    def _write_rows(self, cur: psycopg.Cursor, rows: list, *, merge: bool) -> tuple[int, int]:
        """Store readings; returns how many were new and how many conflict with
        a stored reading (same key, another value: the first value stays).

        Fast path: one COPY straight into the hypertable, which fails on the
        unique key if the batch holds a reading stored before (a redelivery)
        or one key twice; then the batch is written again with ``merge``: the
        first reading of each key staged, and inserted with ON CONFLICT DO
        NOTHING."""
        if not merge:
            copy_rows(cur, COPY_DIRECT, rows)
            if self._rollups:
                hourly, daily = rollups(rows)
                copy_rows(cur, COPY_HOURLY, hourly, HOURLY_TYPES)
                copy_rows(cur, COPY_DAILY, daily, DAILY_TYPES)
                cur.execute(UPSERT_ROLLUPS)
            return len(rows), 0
        first, clashes = first_of_each_key(rows)
        cur.execute("DELETE FROM readings_stage")  # a savepoint's share may have staged rows
        copy_rows(cur, COPY_STAGE, first)
        if self._rollups:
            cur.execute(MERGE_WITH_ROLLUPS, {"tz": TIME_ZONE})
            stored = cur.fetchone()[0]
        else:
            cur.execute(MERGE)
            stored = cur.rowcount
        clashes += cur.execute(CONFLICTS).fetchall()
        for device_id, metric, t, kept, other in clashes[:CONFLICTS_LOGGED]:
            logger.warning("conflicting reading of %s %s at %s: kept %r, not %r", device_id,
                           metric, _iso(float(t)), kept, other)
        if len(clashes) > CONFLICTS_LOGGED:
            logger.warning("%d more conflicting readings in this batch",
                           len(clashes) - CONFLICTS_LOGGED)
        return stored, len(clashes)

    @staticmethod
    def _rollback(conn: psycopg.Connection) -> None:
        if not conn.closed:
            try:
                conn.rollback()
            except psycopg.Error:
                conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def first_of_each_key(rows: list) -> tuple[list, list[tuple]]:
    """The first reading of each key (device, metric, time to the microsecond,
    as stored), and ``(device, metric, time, kept, other)`` for each later one
    with a different value."""
    seen: dict[tuple, float] = {}
    first = []
    clashes = []
    for row in rows:
        key = (row[0], row[1], round(row[2] * 1_000_000))
        kept = seen.get(key)
        if kept is None:
            seen[key] = row[3]
            first.append(row)
        elif kept != row[3]:
            clashes.append((row[0], row[1], row[2], kept, row[3]))
    return first, clashes


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{round(t % 1 * 1e6):06d}Z"


def _insert_all(cur: psycopg.Cursor, statement: str, rows: list[tuple]) -> int:
    """Insert rows (ON CONFLICT DO NOTHING); returns how many were new."""
    if not rows:
        return 0
    cur.executemany(statement, rows)
    return cur.rowcount


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
    """Hourly and daily (the platform's days, agri/clock.py) min, max, sum and count
    of readings rows."""
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
        key = (device_id, metric, int((hour * 3600 + UTC_OFFSET_S) // 86400))
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


def _one_by_one(conn: psycopg.Connection, statement: str, rows: list[tuple],
                topic: Callable[[str], str]) -> tuple[int, list[rejects.RejectRow]]:
    """Insert rows each in a savepoint; returns how many were new, and the
    refused ones as rejects."""
    new = 0
    refused = []
    for row in rows:
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(statement, row)
                new += cur.rowcount
        except psycopg.Error as exc:
            if classify(exc, conn) != REFUSED:
                raise
            reason = f"database refused the record: {exc}".strip()
            refused.append((row[-1], topic(row[0]), row[0], reason, None, str(row[-2]).encode()))
    return new, refused
