"""Backup and restore as the operations section says: pg_dump of the
database (custom format), pg_restore into a new database, with TimescaleDB's
pre/post-restore calls around it."""

from __future__ import annotations

import secrets
import subprocess
import time
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from agri.api.accounts import add_user
from agri.deploy.db_roles import login_url
from agri.deploy.servers import pg_bindir
from agri.ingest.batch import Batch
from agri.ingest.writer import Writer
from tests.fix_roles import service_urls

# What must come back identical.
CHECKS = {
    # Sums as numeric: exact whatever order the rows are summed in.
    "readings": "SELECT count(*), sum(value::numeric) FROM readings",
    "devices": "SELECT count(*), string_agg(id || password_hash, ',' ORDER BY id) FROM devices",
    "users": "SELECT count(*), string_agg(u.name || encode(t.token_hash, 'hex'), ',' "
             "ORDER BY u.name, t.id) FROM users u JOIN api_tokens t ON t.user_name = u.name",
    "hourly": "SELECT count(*), sum(count), sum(sum::numeric) FROM readings_hourly",
    "daily rollup": "SELECT device_id, metric, day, min, max, sum, count FROM readings_daily "
                    "WHERE device_id = 'backup-1' ORDER BY day",
    "rejects": "SELECT count(*) FROM rejects",
    "migrations": "SELECT string_agg(version, ',' ORDER BY version) FROM schema_migrations",
    "chunks": "SELECT count(*) FROM timescaledb_information.chunks "
              "WHERE hypertable_name = 'readings'",
}


def _state(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CHECKS.items()}


def test_pg_dump_restores_into_a_new_database(platform, tmp_path):
    device = "backup-1"
    platform.add_device(device)
    with psycopg.connect(platform.db_url) as conn:
        add_user(conn, name="backup-user", role="farmer")
    now = time.time()
    batch = Batch()  # readings over 20 days: several chunks, several Tokyo days
    batch.rows = [(device, "water_temp", now - 20 * 86400 + i * 3600, 15.0 + i % 7, now)
                  for i in range(480)]
    writer = Writer(platform.db_url)
    writer.write(batch)
    writer.close()
    before = _state(platform.db_url)
    assert before["daily rollup"] and before["chunks"][0][0] >= 3

    dump = tmp_path / "agri.dump"
    subprocess.run([str(pg_bindir() / "pg_dump"), "--format=custom", f"--file={dump}",
                    f"--dbname={platform.db_url}"], check=True, capture_output=True, timeout=300)

    name = f"restored_{secrets.token_hex(4)}"
    restored = platform.db_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(platform.db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(restored, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION timescaledb")
            conn.execute("SELECT timescaledb_pre_restore()")
        # (The dump says CREATE EXTENSION IF NOT EXISTS: no clash with the above.)
        result = subprocess.run([str(pg_bindir() / "pg_restore"), "--exit-on-error",
                                 f"--dbname={restored}", str(dump)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and "error" not in result.stderr, result.stderr
        with psycopg.connect(restored, autocommit=True) as conn:
            conn.execute("SELECT timescaledb_post_restore()")

        assert _state(restored) == before
        # The restored database works for the services, with their rights.
        with psycopg.connect(restored) as conn:
            assert conn.execute("SELECT has_table_privilege('agri_ingest', 'readings', "
                                "'INSERT'), has_table_privilege('agri_ingest', 'devices', "
                                "'INSERT')").fetchone() == (True, False)
        ingest_url = service_urls(platform)["ingest"]
        password = unquote(urlsplit(ingest_url).password)
        batch.rows = [(device, "water_temp", now - 60, 21.0, now)]
        writer = Writer(login_url(restored, "ingest", password))
        assert writer.write(batch).stored == 1
        writer.close()
        assert _state(restored)["readings"][0][0] == before["readings"][0][0] + 1
    finally:
        with psycopg.connect(platform.db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
