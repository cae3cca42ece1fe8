"""/healthz: stale ingest workers are named, database errors are not shown."""

from __future__ import annotations

import httpx
import psycopg

from agri.api.routes.health import STALE_AFTER_S


def test_a_worker_silent_for_over_a_minute_is_stale(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        # What a worker that died two minutes ago leaves behind; and one retired.
        conn.execute("INSERT INTO ingest_stats (worker, updated_at, counters) VALUES "
                     "('health-dead', now() - interval '2 minutes', '{}'), "
                     "('health-retired', now() - interval '2 hours', '{\"retired\": 1}')")
    try:
        body = httpx.get(f"{api}/healthz").json()
    finally:
        with psycopg.connect(platform.db_url) as conn:
            conn.execute("DELETE FROM ingest_stats WHERE worker LIKE 'health-%%'")
    assert body["status"] == "stale"
    assert list(body["stale_workers"]) == ["health-dead"]
    assert STALE_AFTER_S < body["stale_workers"]["health-dead"]["last_report_s"] < 600
    assert body["ingest_workers"]["health-retired"]["state"] == "retired"
    assert "health-dead" not in httpx.get(f"{api}/healthz").json()["stale_workers"]


def test_health_shows_no_database_error_text(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("ALTER TABLE ingest_stats RENAME TO ingest_stats_away")
    try:
        r = httpx.get(f"{api}/healthz")
    finally:
        with psycopg.connect(platform.db_url) as conn:
            conn.execute("ALTER TABLE ingest_stats_away RENAME TO ingest_stats")
    assert r.status_code == 503
    assert r.json() == {"status": "error", "database": "database unavailable"}
    assert "ingest_stats" not in r.text and "relation" not in r.text
    assert httpx.get(f"{api}/healthz").status_code == 200
