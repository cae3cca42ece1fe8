"""The migration runner: each migration all or nothing, one rollup path on
every edition, compression only where the edition has it."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from agri.deploy.migrate import (
    MIGRATIONS,
    MigrationError,
    compression_plan,
    edition,
    migrate,
    plan,
)
from agri.settings import Settings, SettingsError, load


def _copy_migrations(to: Path) -> Path:
    to.mkdir()
    for entry in MIGRATIONS.iterdir():
        if entry.name.endswith(".sql"):
            (to / entry.name).write_text(entry.read_text())
    return to


def test_a_failing_migration_leaves_nothing_and_is_not_recorded(scratch_db, tmp_path):
    migrations = _copy_migrations(tmp_path / "migrations")
    broken = migrations / "900_half.sql"
    # Statements that succeed, one in a DO block with ";\n" inside, then one that fails.
    broken.write_text("CREATE TABLE half_done (x int);\n"
                      "DO $$ BEGIN\n  INSERT INTO half_done VALUES (1);\nEND $$;\n"
                      "INSERT INTO readings_hourly VALUES ('d', 'm', now(), 1, 1, 1, 1);\n"
                      "SELECT no_such_function();\n")
    with psycopg.connect(scratch_db) as conn:
        with pytest.raises(MigrationError, match=r"900_half\.sql.*no_such_function"):
            migrate(conn, directory=migrations, settings=Settings())
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations "
                                               "ORDER BY 1")]
        assert versions == [v for v, _ in plan(MIGRATIONS)]  # all before it, not it
        assert conn.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM readings_hourly").fetchone() == (0,)

        broken.write_text(broken.read_text().replace("SELECT no_such_function();\n", ""))
        assert migrate(conn, directory=migrations, settings=Settings()) == ["900_half.sql"]
        assert migrate(conn, directory=migrations, settings=Settings()) == []
        assert conn.execute("SELECT count(*) FROM half_done").fetchone() == (1,)
        assert conn.execute("SELECT name FROM schema_migrations WHERE version = '900'"
                            ).fetchone() == ("900_half.sql",)


def test_a_fresh_database_gets_the_schema_and_the_service_rights(scratch_db):
    with psycopg.connect(scratch_db) as conn:
        applied = migrate(conn, settings=Settings())
        assert applied == [name for _, name in plan()]
        assert conn.execute("SELECT has_table_privilege('agri_ingest', 'readings', 'INSERT'), "
                            "has_table_privilege('agri_api', 'readings', 'INSERT')"
                            ).fetchone() == (True, False)


def test_one_rollup_path_on_every_edition(platform):
    """Edition detection stays (compression depends on it); the rollups are
    the platform-maintained tables whatever the edition."""
    with psycopg.connect(platform.db_url) as conn:
        license_name = edition(conn)
        assert license_name in ("apache", "timescale")
        assert license_name == conn.execute(
            "SELECT current_setting('timescaledb.license')").fetchone()[0]
        kinds = conn.execute("SELECT relname, relkind FROM pg_class WHERE relname IN "
                             "('readings_hourly', 'readings_daily') ORDER BY 1").fetchall()
        assert kinds == [("readings_daily", "r"), ("readings_hourly", "r")]
        assert conn.execute("SELECT enabled FROM platform_features "
                            "WHERE name = 'maintained_rollups'").fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM timescaledb_information.continuous_aggregates"
                            ).fetchone() == (0,)
    names = [name for _, name in plan()]
    assert "003_rollups.sql" in names
    assert not [n for n in names if n.endswith((".apache.sql", ".timescale.sql"))]


def test_the_plan_refuses_edition_variants_and_shared_versions(tmp_path):
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "002_b.timescale.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="002_b.timescale.sql"):
        plan(tmp_path)
    (tmp_path / "002_b.timescale.sql").unlink()
    (tmp_path / "001_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share version 001"):
        plan(tmp_path)
    (tmp_path / "001_c.sql").unlink()
    shutil.copy(tmp_path / "001_a.sql", tmp_path / "grants.sql")
    assert plan(tmp_path) == [("001", "001_a.sql")]


def test_compression_is_off_by_default_and_only_after_the_oldest_accepted_reading(
        monkeypatch):
    assert Settings().compress_after_days is None
    monkeypatch.setenv("AGRI_COMPRESS_AFTER_DAYS", "30")  # ingest accepts 35 days
    with pytest.raises(SettingsError, match=r"(?s)AGRI_COMPRESS_AFTER_DAYS.*AGRI_MAX_AGE_DAYS"):
        load()
    monkeypatch.setenv("AGRI_MAX_AGE_DAYS", "20")
    assert load().compress_after_days == 30
    monkeypatch.setenv("AGRI_COMPRESS_AFTER_DAYS", "not-a-number")
    with pytest.raises(SettingsError, match="AGRI_COMPRESS_AFTER_DAYS"):
        load()
    assert compression_plan("timescale", 40.0) is True
    assert compression_plan("timescale", None) is False
    assert compression_plan("apache", None) is False


def test_compression_is_refused_clearly_on_the_apache_build(platform):
    with psycopg.connect(platform.db_url, autocommit=True) as conn:
        if edition(conn) != "apache":
            pytest.skip("this cluster's TimescaleDB has compression")
        with pytest.raises(MigrationError, match="unset AGRI_COMPRESS_AFTER_DAYS"):
            migrate(conn, settings=Settings(compress_after_days=60))
    result = platform.cli("db", "migrate", check=False, AGRI_COMPRESS_AFTER_DAYS="60")
    assert result.returncode != 0
    assert "AGRI_COMPRESS_AFTER_DAYS" in result.stderr
