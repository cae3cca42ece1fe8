"""Scheduled analytics run once per schedule whichever process takes it, and
images are processed by the scheduler as they arrive."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import date, datetime

import psycopg
import pytest

from agri.analytics import jobs
from agri.clock import TZ
from tests.fix_stack import wait_for


def test_a_run_is_taken_by_one_process_and_not_repeated(platform):
    day = date(2001, 1, 1)
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow():
        calls.append("a")
        started.set()
        release.wait(30)
        return {"by": "a"}

    with psycopg.connect(platform.db_url) as a, psycopg.connect(platform.db_url) as b:
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault(
            "a", jobs.run_once(a, "test", day, slow)))
        worker.start()
        assert started.wait(30)
        # Another process meanwhile: not its run to take.
        assert jobs.run_once(b, "test", day, lambda: calls.append("b") or {}) is None
        release.set()
        worker.join(30)
        assert result["a"] == {"by": "a"}
        # Done: nobody runs it again, unless forced (agri analytics run).
        assert jobs.run_once(b, "test", day, lambda: calls.append("b") or {}) is None
        assert jobs.run_once(b, "test", day, lambda: calls.append("c") or {"by": "c"},
                             force=True) == {"by": "c"}
    assert calls == ["a", "c"]
    rows = platform.sql("SELECT status, summary FROM analytics_runs WHERE schedule = 'test' "
                        "AND run_for = %s", (day,))
    assert rows == [("done", {"by": "c"})]


def test_a_failed_run_is_recorded_and_taken_again(platform):
    day = date(2001, 1, 2)

    def broken():
        raise RuntimeError("boom")

    with psycopg.connect(platform.db_url) as conn:
        with pytest.raises(RuntimeError):
            jobs.run_once(conn, "test", day, broken)
        row = platform.sql("SELECT status, error FROM analytics_runs WHERE schedule = 'test' "
                           "AND run_for = %s", (day,))
        assert row == [("failed", "RuntimeError: boom")]
        assert jobs.run_once(conn, "test", day, lambda: {"ok": True}) == {"ok": True}


def test_due_only_from_the_daily_hour_local():
    assert jobs.due(datetime(2026, 8, 1, 4, 59, tzinfo=TZ)) is None
    assert jobs.due(datetime(2026, 8, 1, 5, 0, tzinfo=TZ)) == date(2026, 8, 1)
    # 20:00 UTC is 05:00 the next day in Asia/Tokyo.
    assert jobs.due(datetime.fromisoformat("2026-08-01T20:00:00+00:00")) == date(2026, 8, 2)


def test_two_schedulers_run_the_day_once(platform):
    today = datetime.now(TZ).date()
    if jobs.due(datetime.now(TZ)) is None:
        pytest.skip("before the daily hour in Asia/Tokyo: the daily run is not due")
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("DELETE FROM analytics_runs WHERE schedule = 'daily' AND run_for = %s",
                     (today,))
    env = platform.env()
    procs = [subprocess.Popen([sys.executable, "-m", "agri.cli", "analytics", "serve",
                               "--poll", "0.5"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        wait_for(lambda: platform.sql(
            "SELECT status FROM analytics_runs WHERE schedule = 'daily' AND run_for = %s",
            (today,)) == [("done",)], timeout=120, what="the daily run done")
        taken = platform.sql("SELECT taken_by, summary FROM analytics_runs WHERE schedule = "
                             "'daily' AND run_for = %s", (today,))
        assert len(taken) == 1 and json.loads(json.dumps(taken[0][1]))["as_of"] == str(today)
        assert any(taken[0][0].endswith(f":{p.pid}") for p in procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            _, err = p.communicate(timeout=30)
            assert p.returncode == 0, err[-2000:]
