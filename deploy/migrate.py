"""The migration runner: ordered SQL files ``NNN_name.sql`` in ``migrations/``,
each applied once and recorded in ``schema_migrations``.

Each migration runs in one transaction with its record: a migration that
fails leaves nothing behind, is not recorded, and the error names the file.
After the numbered files, every run applies ``grants.sql`` (the rights of the
service roles, idempotent), keeps ``device_profiles`` in step with the code
and applies the compression option.

Rollups: one path on every edition of TimescaleDB, the hourly and daily
rollups maintained by ingest (``003_rollups.sql``); continuous aggregates
are not used, so the path that runs in production is the one tested on the
Apache build.

Compression (``AGRI_COMPRESS_AFTER_DAYS``, off by default): where the edition
offers it (the Community edition, ``SHOW timescaledb.license`` =
``timescale``), chunks of raw readings older than that many days are
compressed by a TimescaleDB policy. It must be more than
``AGRI_MAX_AGE_DAYS``, the oldest reading ingest accepts, so that ingest
never writes into a compressed chunk. On the Apache build, which has no
compression, setting it is refused. Unsetting it removes the policy (chunks
compressed already stay compressed).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import orjson
import psycopg

from agri.devices.profiles import METRICS, PROFILES
from agri.settings import Settings, load

logger = logging.getLogger(__name__)

MIGRATIONS = resources.files("agri.deploy") / "migrations"
GRANTS = "grants.sql"
LOCK_ID = 0x61677269  # advisory lock: one runner at a time


class MigrationError(RuntimeError):
    """The schema could not be brought up to date; the message names the file
    or the setting to fix."""


def edition(conn: psycopg.Connection) -> str:
    """'apache' or 'timescale' (Community); needs the extension preloaded."""
    return conn.execute("SHOW timescaledb.license").fetchone()[0]


def plan(directory: Traversable | Path = MIGRATIONS) -> list[tuple[str, str]]:
    """(version, file name) of the numbered migrations, in order."""
    found: dict[str, str] = {}
    for entry in directory.iterdir():
        name = entry.name
        if not name.endswith(".sql") or name == GRANTS:
            continue
        version = name.split("_", 1)[0]
        if not version.isdigit() or "." in name[:-4]:
            raise MigrationError(f"{name}: migrations are named NNN_name.sql, one per version")
        if version in found:
            raise MigrationError(f"{found[version]} and {name} share version {version}")
        found[version] = name
    return sorted(found.items())


def migrate(conn: psycopg.Connection, *, directory: Traversable | Path = MIGRATIONS,
            settings: Settings | None = None) -> list[str]:
    """Apply what is missing; returns the files applied. Idempotent. Run as
    the migration owner; ``settings`` (for the compression option) are read
    from the environment when not given."""
    settings = settings or load()
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
            version text PRIMARY KEY, name text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())""")
        done = dict(conn.execute("SELECT version, name FROM schema_migrations").fetchall())
        if done.get("003", "").endswith(".timescale.sql"):
            raise MigrationError(
                "this database has the continuous-aggregate rollups of an earlier version "
                "(003_rollups.timescale.sql), which the platform no longer maintains: "
                "restore a pg_dump of it into a database migrated by this version")
        applied = []
        for version, name in plan(directory):
            if version in done:
                continue
            logger.info("applying migration %s", name)
            _apply(conn, directory / name, record=(version, name))
            applied.append(name)
        if (directory / GRANTS).is_file():
            _apply(conn, directory / GRANTS)
        _sync_profiles(conn)
        _compression(conn, settings)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))


def _apply(conn: psycopg.Connection, path: Traversable | Path, *,
           record: tuple[str, str] | None = None) -> None:
    """Run one SQL file in one transaction (with its record, for a migration)."""
    try:
        with conn.transaction():
            conn.execute(path.read_text())
            if record is not None:
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             record)
    except psycopg.Error as exc:
        message = str(exc).strip() or type(exc).__name__
        raise MigrationError(f"migration {path.name} failed, nothing of it was applied: "
                             f"{message}") from None


def _sync_profiles(conn: psycopg.Connection) -> None:
    """The device_profiles mirror made what the profile files say; a profile
    the database refuses (a metric's stored unit changed) is a MigrationError
    and nothing of the sync is kept."""
    try:
        _write_profiles(conn)
    except psycopg.Error as exc:
        message = str(exc).strip() or type(exc).__name__
        raise MigrationError(f"the device profiles were not synced, nothing of them was "
                             f"changed: {message}") from None


def _write_profiles(conn: psycopg.Connection) -> None:
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
        # Metrics of no profile (radio quality, accepted from every device)
        # keep their stored unit too (from migration 016 on).
        if conn.execute("SELECT to_regclass('metric_units')").fetchone()[0] is None:
            return
        for name in sorted(set(METRICS) - {m for p in PROFILES.values() for m in p.metrics}):
            unit = METRICS[name].unit
            stored = conn.execute(
                "INSERT INTO metric_units (metric, unit) VALUES (%s, %s) "
                "ON CONFLICT (metric) DO UPDATE SET metric = excluded.metric RETURNING unit",
                (name, unit)).fetchone()[0]
            if stored != unit:
                raise psycopg.errors.RaiseException(
                    f"metric {name} is stored in {stored}, the metrics file now says {unit}: "
                    f"keep {stored} as its unit (list {unit} under accept with its factor), "
                    f"or give the new quantity a new metric name")


def compression_plan(license_name: str, compress_after_days: float | None) -> bool:
    """Whether raw readings get a compression policy on this edition; refuses
    the option where the edition has no compression."""
    if compress_after_days is None:
        return False
    if license_name != "timescale":
        raise MigrationError(
            f"AGRI_COMPRESS_AFTER_DAYS is set, but this TimescaleDB is the {license_name!r} "
            f"build, which has no compression: unset AGRI_COMPRESS_AFTER_DAYS, or use the "
            f"Community edition (timescaledb.license = 'timescale')")
    return True


def _compression(conn: psycopg.Connection, settings: Settings) -> None:
    license_name = edition(conn)
    after = settings.compress_after_days
    if compression_plan(license_name, after):
        with conn.transaction():
            conn.execute("""ALTER TABLE readings SET (timescaledb.compress,
                timescaledb.compress_segmentby = 'device_id, metric',
                timescaledb.compress_orderby = 'time')""")
            conn.execute("SELECT remove_compression_policy('readings', if_exists => true)")
            conn.execute("SELECT add_compression_policy('readings', compress_after => %s)",
                         (timedelta(days=after),))
        logger.info("raw readings older than %g days are compressed", after)
    elif license_name == "timescale":
        conn.execute("SELECT remove_compression_policy('readings', if_exists => true)")
