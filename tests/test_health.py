"""/healthz judges the database, the broker and the ingest workers: stale
workers are named, database errors are not shown, a broker that is away is a
503 naming the broker."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest

from agri.api.broker_probe import CACHE_S, BrokerState, probe
from agri.api.routes.health import STALE_AFTER_S
from agri.mqtt import parse_url
from tests.fix_stack import api_server, own_platform, wait_for


def test_a_worker_silent_for_over_a_minute_is_stale(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        # What a worker that died two minutes ago leaves behind; and one retired.
        conn.execute("INSERT INTO ingest_stats (worker, updated_at, counters) VALUES "
                     "('health-dead', now() - interval '2 minutes', '{}'), "
                     "('health-retired', now() - interval '2 hours', '{\"retired\": 1}')")
    try:
        r = httpx.get(f"{api}/healthz")
    finally:
        with psycopg.connect(platform.db_url) as conn:
            conn.execute("DELETE FROM ingest_stats WHERE worker LIKE 'health-%%'")
    body = r.json()
    assert r.status_code == 503
    assert body["status"] == "stale" and body["failed"] == ["ingest"]
    assert body["database"] == "ok" and body["broker"] == "ok"
    assert list(body["stale_workers"]) == ["health-dead"]
    assert STALE_AFTER_S < body["stale_workers"]["health-dead"]["last_report_s"] < 600
    assert body["ingest_workers"]["health-retired"]["state"] == "retired"
    again = httpx.get(f"{api}/healthz")
    assert again.status_code == 200, again.text
    assert "health-dead" not in again.json()["stale_workers"]
    assert again.json()["failed"] == [] and again.json()["status"] == "ok"


def test_health_shows_no_database_error_text(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("ALTER TABLE ingest_stats RENAME TO ingest_stats_away")
    try:
        r = httpx.get(f"{api}/healthz")
    finally:
        with psycopg.connect(platform.db_url) as conn:
            conn.execute("ALTER TABLE ingest_stats_away RENAME TO ingest_stats")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "error" and body["failed"] == ["database"]
    assert body["database"] == "database unavailable"
    assert "ingest_stats" not in r.text and "relation" not in r.text
    assert httpx.get(f"{api}/healthz").status_code == 200


def test_metrics_still_answer_when_the_ingest_counters_cannot_be_read(platform, api):
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("ALTER TABLE ingest_stats RENAME TO ingest_stats_gone")
    try:
        r = httpx.get(f"{api}/metrics")
    finally:
        with psycopg.connect(platform.db_url) as conn:
            conn.execute("ALTER TABLE ingest_stats_gone RENAME TO ingest_stats")
    assert r.status_code == 200
    assert "agri_ingest_stats_up 0.0" in r.text
    assert "agri_http_request_duration_seconds_bucket" in r.text
    assert "agri_ingest_stats_up 1.0" in httpx.get(f"{api}/metrics").text


@pytest.mark.fault
def test_a_broker_that_is_away_is_named_and_back_when_it_is():
    """The API of this stack has no broker account: the probe's anonymous
    CONNECT is refused ("not authorised"), which shows the broker up; with
    the broker stopped, /healthz is a 503 naming it."""
    with own_platform("agri-test-health-") as p, api_server(p) as base:
        body = httpx.get(f"{base}/healthz").json()
        assert body["broker"] == "ok" and body["failed"] == []
        p.stack.mosquitto.stop()

        def broker_failed() -> dict | None:
            r = httpx.get(f"{base}/healthz", timeout=10)
            return r.json() if r.status_code == 503 else None

        down = wait_for(broker_failed, timeout=CACHE_S + 10, what="/healthz to name the broker")
        assert down["failed"] == ["broker"] and down["status"] == "error"
        assert "unreachable" in down["broker"] and down["database"] == "ok"
        p.stack.restart(p.stack.mosquitto)
        wait_for(lambda: httpx.get(f"{base}/healthz", timeout=10).status_code == 200,
                 timeout=CACHE_S + 10, what="/healthz to see the broker back")


def test_the_broker_probe_over_tls_and_with_an_account_of_its_own():
    with own_platform("agri-test-health-tls-", tls=True) as p:
        port = p.stack.state.tls_port
        cafile = p.stack.mosquitto.tls.cafile
        trusted = asyncio.run(probe(parse_url(f"mqtts://localhost:{port}?cafile={cafile}")))
        assert trusted == BrokerState(True, "ok")
        untrusted = asyncio.run(probe(parse_url(f"mqtts://localhost:{port}")))
        assert untrusted.up is False and "TLS failed" in untrusted.detail
        # An account the broker accepts (here the simulator's) logs in and out.
        assert asyncio.run(probe(parse_url(p.simulator_url()))) == BrokerState(True, "ok")
        # Something that is not an MQTT broker (the database's port) is down.
        other = asyncio.run(probe(parse_url(f"mqtt://127.0.0.1:{p.stack.state.pg_port}")))
        assert other.up is False and "without answering" in other.detail
