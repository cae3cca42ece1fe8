"""Raw readings past the retention period are dropped; rollups are kept."""

from __future__ import annotations

import time

import psycopg
import pytest

from agri.ingest.batch import Batch
from agri.ingest.maintenance import drop_old_readings
from agri.ingest.writer import Writer
from tests.fix_roles import service_urls


def test_retention_drops_old_raw_chunks_and_keeps_rollups(platform):
    now = time.time()
    batch = Batch()
    batch.rows = [("ret-1", "water_temp", now - 400 * 86400 + i * 60, 20.0, now)
                  for i in range(100)]
    batch.rows += [("ret-1", "water_temp", now - 3600 + i, 21.0, now) for i in range(10)]
    writer = Writer(platform.db_url)
    writer.write(batch)
    writer.close()
    # As ingest runs it: its own login, through the owner's retention function.
    with psycopg.connect(service_urls(platform)["ingest"]) as conn:
        assert drop_old_readings(conn, keep_days=365) >= 1
        assert drop_old_readings(conn, keep_days=365) == 0
    raw = platform.sql("SELECT count(*) FROM readings WHERE device_id = 'ret-1'")[0][0]
    daily = platform.sql("SELECT sum(count) FROM readings_daily WHERE device_id = 'ret-1'")[0][0]
    assert raw == 10 and daily == 110


def test_a_batch_is_one_transaction(platform):
    """Readings, rollups and rejects of a batch commit together or not at all:
    when the database refuses one part, nothing of the batch is stored."""
    now = time.time()
    batch = Batch()
    batch.rows = [("txn-1", "water_temp", now - 60 + i, 20.0, now) for i in range(10)]
    # PostgreSQL text cannot hold NUL: this reject row makes the batch fail.
    batch.rejects = [(now, "agri/v1/devices/txn-1/senml", "txn-1", "bad\x00reason", None, b"x")]
    writer = Writer(platform.db_url)
    with pytest.raises(psycopg.DataError):
        writer._write_once(batch)  # the plain path, without the salvage retry
    assert platform.sql("SELECT count(*) FROM readings WHERE device_id = 'txn-1'") == [(0,)]
    assert platform.sql("SELECT count(*) FROM readings_hourly WHERE device_id = 'txn-1'") == [(0,)]
    # The writer's own retry salvages the batch: everything stored, once.
    written = writer.write(batch)
    writer.close()
    assert (written.stored, written.rejected) == (10, 1)
    assert platform.sql("SELECT sum(count) FROM readings_hourly WHERE device_id = 'txn-1'"
                        ) == [(10,)]
    assert platform.sql("SELECT reason FROM rejects WHERE device_id = 'txn-1'") == [
        ("bad\\x00reason",)]
