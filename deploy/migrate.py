"""The migration runner: ordered SQL files in ``migrations/``, each applied
once, recorded in ``schema_migrations``.

A file ``NNN_name.sql`` applies everywhere; ``NNN_name.apache.sql`` and
``NNN_name.timescale.sql`` are the variants for the Apache build of
TimescaleDB and the Community (Timescale License) edition, chosen by
``SHOW timescaledb.license``.
"""

from __future__ import annotations

import logging
from importlib import resources

import orjson
import psycopg

from agri.devices.profiles import METRICS, PROFILES

logger = logging.getLogger(__name__)

MIGRATIONS = resources.files("agri.deploy") / "migrations"
LOCK_ID = 0x61677269  # advisory lock: one runner at a time


def edition(conn: psycopg.Connection) -> str:
    """'apache' or 'timescale' (Community); needs the extension preloaded."""
    return conn.execute("SHOW timescaledb.license").fetchone()[0]


def _plan(license_name: str) -> list[tuple[str, str]]:
    """(version, file name) in order, the variant for this edition."""
    chosen: dict[str, str] = {}
    for entry in sorted(MIGRATIONS.iterdir(), key=lambda e: e.name):
        name = entry.name
        if not name.endswith(".sql"):
            continue
        parts = name[:-4].split(".")
        if len(parts) == 2 and parts[1] != license_name:
            continue
        chosen[name.split("_", 1)[0]] = name
    return sorted(chosen.items())


def migrate(conn: psycopg.Connection) -> list[str]:
    """Apply what is missing; returns the files applied. Idempotent."""
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
            version text PRIMARY KEY, name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())""")
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for version, name in _plan(edition(conn)):
            if version in done:
                continue
            sql_text = (MIGRATIONS / name).read_text()
            logger.info("applying migration %s", name)
            if "timescaledb.continuous" in sql_text:
                # Continuous aggregates cannot be created inside a transaction
                # block: such a migration runs statement by statement.
                for statement in sql_text.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                _record(conn, version, name)
            else:
                with conn.transaction():
                    conn.execute(sql_text)
                    _record(conn, version, name)
            applied.append(name)
        _sync_profiles(conn)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))


def _record(conn: psycopg.Connection, version: str, name: str) -> None:
    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))


def _sync_profiles(conn: psycopg.Connection) -> None:
    with conn.transaction():
        for p in PROFILES.values():
            metrics = {
                name: {"unit": METRICS[name].unit, "low": METRICS[name].low,
                       "high": METRICS[name].high, "interval_s": interval}
                for name, interval in p.intervals_s.items()
            }
            conn.execute(
                """INSERT INTO device_profiles (name, description, metrics)
                   VALUES (%s, %s, %s::jsonb)
                   ON CONFLICT (name) DO UPDATE
                   SET description = excluded.description, metrics = excluded.metrics""",
                (p.name, p.description, orjson.dumps(metrics).decode()))
