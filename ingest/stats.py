"""Ingest counters: kept in memory, logged, and saved in ``ingest_stats`` so
that any API process can expose them at /metrics."""

from __future__ import annotations

import logging
import threading
import time

import orjson
import psycopg

logger = logging.getLogger(__name__)

SAVE_EVERY_S = 2.0
LOG_EVERY_S = 60.0

COUNTERS = ("messages_received", "readings_stored", "readings_duplicate",
            "readings_conflict", "rejects", "batches_committed", "events_stored",
            "events_duplicate", "messages_refused")
# pending_messages: received but not yet committed and acknowledged.
GAUGES = ("lag_seconds", "queue_depth", "pending_messages", "broker_dropped_messages",
          "broker_stored_messages")


class Stats:
    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.values: dict[str, float] = dict.fromkeys(COUNTERS + GAUGES, 0)
        self._lock = threading.Lock()
        self._saved_at = 0.0
        self._logged_at = time.monotonic()

    def resume(self, conn: psycopg.Connection) -> None:
        """Continue the counters a previous run of this worker saved."""
        row = conn.execute("SELECT counters FROM ingest_stats WHERE worker = %s",
                           (self.worker,)).fetchone()
        conn.commit()
        if row:
            with self._lock:
                for key in COUNTERS:
                    self.values[key] = float(row[0].get(key, 0))
                if row[0].get("age_histogram"):
                    self.values["age_histogram"] = row[0]["age_histogram"]

    def add(self, **counts: float) -> None:
        with self._lock:
            for key, n in counts.items():
                self.values[key] += n

    def set(self, **gauges: float) -> None:
        with self._lock:
            self.values.update(gauges)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.values)

    def maybe_save(self, conn_factory, on_error=None, *, force: bool = False) -> None:
        """Log every LOG_EVERY_S and save every SAVE_EVERY_S (or now, ``force``)
        through ``conn_factory()``; after a database error ``on_error()`` is
        called (to drop the connection) and the next save tries again."""
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            logger.info("ingest %s: %s", self.worker, self.snapshot())
        if now - self._saved_at < SAVE_EVERY_S and not force:
            return
        self._saved_at = now
        try:
            conn = conn_factory()
            conn.execute(
                """INSERT INTO ingest_stats (worker, updated_at, counters) VALUES (%s, now(), %s)
                   ON CONFLICT (worker) DO UPDATE
                   SET updated_at = excluded.updated_at, counters = excluded.counters""",
                (self.worker, orjson.dumps(self.snapshot()).decode()))
            conn.commit()
        except psycopg.Error as exc:
            logger.warning("could not save ingest stats (%s); trying again with a new "
                           "connection", exc)
            if on_error is not None:
                on_error()
