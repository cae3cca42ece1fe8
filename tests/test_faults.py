"""Faults of ingest and of the database, counted as Jepsen counts them
(tests/fault_count.py): after each, nothing the broker acknowledged is lost,
nothing is stored twice or stored unpublished, and the rollups count each
stored reading once. The worker is killed with SIGKILL before and after a
commit, PostgreSQL is stopped under load, several workers share the load,
and workers are retired, also while the database stalls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tests.fault_count import Stream
from tests.fix_stack import wait_for

pytestmark = pytest.mark.fault


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _counter(platform, worker: str, name: str) -> float:
    rows = platform.sql("SELECT (counters->>%s)::float FROM ingest_stats WHERE worker = %s",
                        (name, worker))
    return rows[0][0] if rows and rows[0][0] is not None else 0.0


def _waiting_on_lock(platform) -> int:
    """Sessions waiting for a lock on the readings table."""
    return platform.sql("SELECT count(*) FROM pg_locks WHERE NOT granted "
                        "AND relation = 'readings'::regclass")[0][0]


def _writing(platform) -> int:
    """Sessions in the middle of a COPY into the readings table."""
    return platform.sql("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                        "AND state = 'active' AND query LIKE 'COPY readings%%'")[0][0]


class _LockedReadings:
    """Holds ``LOCK TABLE readings IN EXCLUSIVE MODE`` from a connection of
    the test: readers go on, every writer waits before it can commit."""

    def __init__(self, platform) -> None:
        self.conn = psycopg.connect(platform.db_url)
        self.conn.execute("LOCK TABLE readings IN EXCLUSIVE MODE")

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def test_ingest_killed_mid_stream_loses_and_doubles_nothing(platform):
    worker = platform.start_ingest("k1")
    stream = Stream(platform, "fk-kill", devices=4, messages=12_000).start()
    wait_for(lambda: stream.ledger.stored_count(platform.db_url) > stream.readings // 5,
             what="a fifth stored")
    _kill(worker)
    wait_for(lambda: stream.sent > stream.messages * 0.6, what="more published while down")
    worker = platform.start_ingest("k1")
    stream.join()
    try:
        stream.ledger.wait_all_acked_stored(platform.db_url).assert_exact()
    finally:
        platform.stop_ingest(worker)


def test_ingest_killed_before_commit_loses_and_doubles_nothing(platform):
    """The worker dies while its batch waits for a lock, so the batch never
    commits: none of it may be stored, and all of it comes again."""
    worker = platform.start_ingest("kb")
    stream = Stream(platform, "fk-before", devices=4, messages=6_000).start()
    ledger = stream.ledger
    wait_for(lambda: ledger.stored_count(platform.db_url) > 0, what="a first batch stored")
    lock = _LockedReadings(platform)
    try:
        wait_for(lambda: _waiting_on_lock(platform), what="ingest to wait for the lock")
        stored_at_kill = ledger.stored_count(platform.db_url)
        _kill(worker)
    finally:
        lock.release()
    # The killed worker's database session still waits for the lock; given
    # it, the session finds its client gone and ends without committing.
    wait_for(lambda: not _writing(platform), what="the killed worker's session to end")
    assert ledger.stored_count(platform.db_url) == stored_at_kill, (
        "a batch of a worker killed before its commit was stored")
    worker = platform.start_ingest("kb")
    stream.join()
    try:
        count = ledger.wait_all_acked_stored(platform.db_url)
        assert count.acked > stored_at_kill
        count.assert_exact()
    finally:
        platform.stop_ingest(worker)


AFTER_COMMIT_ATTEMPTS = 12


def test_ingest_killed_after_commit_loses_and_doubles_nothing(platform):
    """The worker dies right after a commit, before the broker has its
    acknowledgements: those messages come again to the next run, which finds
    their readings stored (counted as duplicates) and stores nothing twice.
    Large batches (one per second) keep the acknowledging loop after each
    commit long enough for a kill to land in it; each attempt is checked by
    the duplicates the next run counts."""
    env = {"AGRI_INGEST_BATCH_SECONDS": "1.0"}
    worker = platform.start_ingest("ka", **env)
    # Long enough for several attempts on a loaded machine (each restarts a
    # worker); more devices, not more messages each, which would reach past
    # the readings' future limit.
    stream = Stream(platform, "fk-after", devices=8, messages=120_000, rate=4_000).start()
    ledger = stream.ledger
    hits = 0
    try:
        with psycopg.connect(platform.db_url, autocommit=True) as conn:
            query = "SELECT count(*) FROM readings WHERE device_id = ANY(%s)"
            for _ in range(AFTER_COMMIT_ATTEMPTS):
                before = conn.execute(query, (ledger.device_ids,)).fetchone()[0]
                deadline = time.monotonic() + 30
                while conn.execute(query, (ledger.device_ids,)).fetchone()[0] == before:
                    assert time.monotonic() < deadline, "no commit within 30 s"
                _kill(worker)  # a commit just became visible: its acks are being sent
                # What the next run resumes its counters from.
                duplicates = _counter(platform, "ka", "readings_duplicate")
                batches = _counter(platform, "ka", "batches_committed")
                worker = platform.start_ingest("ka", **env)
                # The redelivered messages come first to the new run.
                wait_for(lambda b=batches: _counter(platform, "ka", "batches_committed") > b + 1,
                         what="the restarted worker to commit two batches")
                if _counter(platform, "ka", "readings_duplicate") > duplicates:
                    hits += 1
                    break
                if stream.sent >= stream.messages * 0.8:
                    break
        stream.join()
        ledger.wait_all_acked_stored(platform.db_url).assert_exact()
    finally:
        platform.stop_ingest(worker)
    # Nothing was lost or doubled either way; whether a kill landed in the
    # acknowledging window is up to timing, which a loaded machine may deny.
    if hits == 0:
        pytest.skip(f"no kill of {AFTER_COMMIT_ATTEMPTS} attempts landed between a commit "
                    "and its acknowledgements (nothing was lost or doubled)")


def test_postgres_stopped_under_load_loses_and_doubles_nothing(platform):
    worker = platform.start_ingest("p1")
    stream = Stream(platform, "fk-pgdown", devices=4, messages=12_000).start()
    ledger = stream.ledger
    wait_for(lambda: ledger.stored_count(platform.db_url) > stream.readings // 5,
             what="a fifth stored")
    platform.stack.postgres.stop(mode="immediate")
    try:
        wait_for(lambda: stream.sent > stream.messages * 0.6, what="more published while down")
        _outage(worker, 2.0)
    finally:
        platform.stack.restart(platform.stack.postgres)
    stream.join()
    try:
        ledger.wait_all_acked_stored(platform.db_url).assert_exact()
        assert worker.poll() is None, "ingest must ride out the outage"
    finally:
        platform.stop_ingest(worker)
    log = (platform.home / "ingest-p1.log").read_text()
    assert "retrying" in log


def _outage(worker: subprocess.Popen, seconds: float) -> None:
    """Let an outage last ``seconds``, failing at once if ingest dies in it."""
    end = time.monotonic() + seconds
    wait_for(lambda: worker.poll() is not None or time.monotonic() >= end,
             timeout=seconds + 10, what="the outage to pass")
    assert worker.poll() is None, "ingest died during the outage"


@pytest.mark.slow
def test_postgres_stopped_60_s_under_load_loses_and_doubles_nothing(platform):
    """A minute without the database while devices keep publishing: the broker
    holds the backlog, ingest retries, and after the restart the backlog is
    stored exactly."""
    worker = platform.start_ingest("p60")
    # 100 messages/s for 75 s: before, during and after the outage.
    stream = Stream(platform, "fk-pg60", devices=5, messages=7_500, rate=100).start()
    ledger = stream.ledger
    wait_for(lambda: ledger.stored_count(platform.db_url) > 1_000, what="a first part stored")
    platform.stack.postgres.stop(mode="immediate")
    try:
        sent_at_stop = stream.sent
        _outage(worker, 60.0)
        assert stream.sent - sent_at_stop > 5_000, "the load went on during the outage"
    finally:
        platform.stack.restart(platform.stack.postgres)
    stream.join()
    try:
        ledger.wait_all_acked_stored(platform.db_url, timeout=180).assert_exact()
        assert worker.poll() is None, "ingest must ride out the outage"
    finally:
        platform.stop_ingest(worker)
    assert "retrying" in (platform.home / "ingest-p60.log").read_text()


def test_three_workers_split_the_load_and_retired_ones_are_drained(platform):
    workers = [platform.start_ingest(w) for w in ("s1", "s2", "s3")]
    stream = Stream(platform, "fk-share", devices=6, messages=9_000).start()
    ledger = stream.ledger
    wait_for(lambda: ledger.stored_count(platform.db_url) > stream.readings // 4,
             what="a quarter stored")
    # Two workers stop while the stream goes on: their share waits for them.
    for w in workers[1:]:
        platform.stop_ingest(w, retire=False)
    stream.join()
    # Retiring them drains what their sessions hold, then ends the sessions.
    for name in ("s2", "s3"):
        platform.retire_ingest(name, idle_s=2)
    try:
        ledger.wait_all_acked_stored(platform.db_url).assert_exact()
    finally:
        platform.stop_ingest(workers[0])
    stats = dict(platform.sql("SELECT worker, (counters->>'readings_stored')::float "
                              "FROM ingest_stats WHERE worker IN ('s1', 's2', 's3')"))
    assert all(stats.get(w, 0) > 0 for w in ("s1", "s2", "s3")), stats


def test_worker_retired_while_the_database_stalls_loses_nothing(platform):
    """Retiring drains a worker's session and then ends it for good, so
    whatever the session still holds when it ends is gone. While the
    database stalls nothing arrives (the broker's window is full of messages
    waiting for a commit), which must not read as 'drained'."""
    worker = platform.start_ingest("rs")
    platform.stop_ingest(worker, retire=False)  # its share waits at the broker
    stream = Stream(platform, "fk-retire", devices=3, messages=3_000).start()
    stream.join()
    lock = _LockedReadings(platform)
    log_path = platform.home / "ingest-rs-retire.log"
    try:
        with open(log_path, "ab") as log:
            retiring = subprocess.Popen(
                [sys.executable, "-m", "agri.cli", "ingest", "--worker", "rs", "--retire",
                 "--retire-after-idle", "1"],
                # A window well below the backlog: most of it is still at the
                # broker while the first batches wait for the database.
                env=platform.env(AGRI_INGEST_RECEIVE_MAXIMUM="500"), stdout=log, stderr=log)
        wait_for(lambda: _waiting_on_lock(platform) or retiring.poll() is not None,
                 what="the retiring worker to wait for the database")
        # The stall lasts several idle periods.
        end = time.monotonic() + 4.0
        wait_for(lambda: retiring.poll() is not None or time.monotonic() >= end,
                 what="the stall to pass")
    finally:
        lock.release()
    try:
        assert retiring.wait(60) == 0, log_path.read_text()[-3000:]
    finally:
        if retiring.poll() is None:
            retiring.kill()
    count = stream.ledger.wait_settled(platform.db_url)
    count.assert_exact()
