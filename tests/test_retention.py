"""Raw readings past the retention period are dropped; rollups are kept."""

from __future__ import annotations

import time

import psycopg

from agri.ingest.batch import Batch
from agri.ingest.maintenance import drop_old_readings
from agri.ingest.writer import Writer


def test_retention_drops_old_raw_chunks_and_keeps_rollups(platform):
    now = time.time()
    batch = Batch()
    batch.rows = [("ret-1", "water_temp", now - 400 * 86400 + i * 60, 20.0, now)
                  for i in range(100)]
    batch.rows += [("ret-1", "water_temp", now - 3600 + i, 21.0, now) for i in range(10)]
    writer = Writer(platform.db_url)
    writer.write(batch)
    writer.close()
    with psycopg.connect(platform.db_url) as conn:
        assert drop_old_readings(conn, keep_days=365) >= 1
    raw = platform.sql("SELECT count(*) FROM readings WHERE device_id = 'ret-1'")[0][0]
    daily = platform.sql("SELECT sum(count) FROM readings_daily WHERE device_id = 'ret-1'")[0][0]
    assert raw == 10 and daily == 110
