"""Least privilege: the migration owner can do anything (even run shell
commands); the ingest and API logins can do their work and nothing else."""

from __future__ import annotations

import time
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from agri.deploy.db_roles import SERVICE_ROLES, RoleError, ensure_logins, login_name, login_url
from agri.ingest.batch import Batch
from agri.ingest.directory import Directory
from agri.ingest.maintenance import drop_old_readings
from agri.ingest.stats import Stats
from agri.ingest.writer import Writer
from tests.fix_roles import service_urls

DENIED = psycopg.errors.InsufficientPrivilege


@pytest.fixture(scope="module")
def logins(platform) -> dict[str, str]:
    """service -> URL of its login, as the embedded stack sets them up."""
    return service_urls(platform)


def _run(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def test_the_owner_can_run_shell_commands_the_services_cannot(platform, logins):
    # Why no process may run as the superuser after migration. (The program reads its input:
    # one that exits first may break the pipe.)
    assert _run(platform.db_url, "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'") == []
    for url in logins.values():
        with pytest.raises(DENIED):
            _run(url, "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'")
        with pytest.raises(DENIED):
            _run(url, "SELECT pg_read_file('/etc/passwd')")


def test_logins_hold_no_attribute_and_one_group(platform, logins):
    for service, group in SERVICE_ROLES.items():
        rows = platform.sql(
            """SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls,
                      rolcanlogin, ARRAY(SELECT b.rolname FROM pg_auth_members m
                                         JOIN pg_roles b ON b.oid = m.roleid
                                         WHERE m.member = r.oid)
               FROM pg_roles r WHERE rolname = %s""", (login_name(service),))
        assert rows == [(False, False, False, False, False, True, [group])]
        assert platform.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                            (group,)) == [(False,)]


def test_ingest_does_its_work_as_its_login(platform, logins):
    url = logins["ingest"]
    device = "roles-ingest-1"
    platform.add_device(device)
    now = time.time()
    batch = Batch()
    batch.rows = [(device, "water_temp", now - 600 + i, 20.0 + i, now) for i in range(20)]
    batch.rejects = [(now, f"agri/v1/devices/{device}/senml", device, "test reject", None, b"x")]
    batch.events = [(device, now, "boot", '{"fw": "1"}', now)]
    writer = Writer(url)
    assert writer.write(batch).stored == 20
    # A redelivery takes the merge path (staging, RETURNING, rollup upsert).
    batch.rows += [(device, "water_temp", now - 10, 30.0, now)]
    written = writer.write(batch)
    writer.close()
    assert (written.stored, written.duplicate) == (1, 20)
    assert platform.sql("SELECT count(*) FROM readings WHERE device_id = %s", (device,)) == [(21,)]
    assert platform.sql("SELECT sum(count) FROM readings_hourly WHERE device_id = %s",
                        (device,)) == [(21,)]
    assert platform.sql("SELECT count(*) FROM device_events WHERE device_id = %s",
                        (device,)) == [(1,)]

    opened: list[psycopg.Connection] = []
    directory = Directory(lambda: opened.append(psycopg.connect(url)) or opened[-1])
    assert directory.lookup(device).profile.name == "paddy-water"
    for conn in opened:
        conn.close()
    stats = Stats("roles-test")
    stats.add(readings_stored=21)
    with psycopg.connect(url) as conn:
        stats.maybe_save(lambda: conn, force=True)
        Stats("roles-test").resume(conn)
        assert drop_old_readings(conn, keep_days=3650) == 0
    assert platform.sql("SELECT (counters->>'readings_stored')::float FROM ingest_stats "
                        "WHERE worker = 'roles-test'") == [(21.0,)]


def test_ingest_login_cannot_read_secrets_change_the_schema_or_the_registry(platform, logins):
    url = logins["ingest"]
    for statement in (
        "SELECT token_hash FROM api_tokens",
        "SELECT password_hash FROM users",
        "SELECT role FROM users",
        "SELECT * FROM users",
        "SELECT password_hash FROM devices",
        "SELECT * FROM devices",
        "DROP TABLE readings",
        "ALTER TABLE readings ADD COLUMN x int",
        "ALTER TABLE devices DROP COLUMN password_hash",
        "TRUNCATE readings",
        "DELETE FROM readings",
        "UPDATE readings SET value = 0",
        "INSERT INTO devices (id, profile, password_hash) VALUES ('evil', 'paddy-water', 'x')",
        "UPDATE devices SET revoked_at = NULL",
        "DELETE FROM devices",
        "INSERT INTO users (name, role) VALUES ('evil', 'admin')",
        "CREATE TABLE public.planted (x int)",
        "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "SELECT drop_chunks('readings', older_than => interval '1 day')",
        "DELETE FROM schema_migrations",
    ):
        with pytest.raises(DENIED):
            _run(url, statement)
    # Retention through the owner's function: never less than a day of raw readings.
    with pytest.raises(psycopg.errors.RaiseException, match="at least one day"):
        _run(url, "SELECT drop_old_readings(interval '1 hour')")
    assert platform.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'readings'") == [(1,)]


def test_api_login_reads_but_cannot_drop_write_or_prune(platform, logins):
    url = logins["api"]
    assert _run(url, "SELECT count(*) FROM readings")[0][0] >= 0
    assert _run(url, "SELECT user_name FROM api_tokens WHERE token_hash = %s",
                (b"no such token",)) == []
    for statement in (
        "DROP TABLE readings",
        "DROP TABLE users",
        "ALTER TABLE users ADD COLUMN x int",
        "SELECT password_hash FROM devices",
        "INSERT INTO readings VALUES ('d', 'm', now(), 1, now())",
        "UPDATE users SET role = 'admin'",
        "UPDATE users SET regions = '{Aomori}'",
        "INSERT INTO users (name, role) VALUES ('evil', 'admin')",
        "DELETE FROM api_tokens",
        "SELECT drop_old_readings(interval '3650 days')",
        "CREATE TABLE public.planted (x int)",
    ):
        with pytest.raises(DENIED):
            _run(url, statement)


def test_ensure_logins_is_idempotent_and_quotes_hostile_passwords(platform, logins):
    hostile = "pw'; DROP TABLE readings; --\\ \"$$"
    with psycopg.connect(platform.db_url) as conn:
        ensure_logins(conn, {"api": hostile})
        ensure_logins(conn, {"api": hostile})
    assert _run(login_url(platform.db_url, "api", hostile), "SELECT current_user") == [
        ("agri_api_login",)]
    assert platform.sql("SELECT count(*) FROM pg_tables WHERE tablename = 'readings'") == [(1,)]
    # The old password no longer works.
    with pytest.raises(psycopg.OperationalError):
        _run(logins["api"], "SELECT 1")
    with psycopg.connect(platform.db_url) as conn:
        ensure_logins(conn, {"api": unquote(urlsplit(logins["api"]).password)})
        with pytest.raises(RoleError, match="unknown service"):
            ensure_logins(conn, {"superuser": "x"})
        with pytest.raises(RoleError, match="empty password"):
            ensure_logins(conn, {"ingest": ""})


def test_login_url_keeps_host_database_and_options():
    url = login_url("postgresql://agri:old@127.0.0.1:5433/agri?sslmode=require", "ingest",
                    "p@ss/w:rd")
    assert url == ("postgresql://agri_ingest_login:p%40ss%2Fw%3Ard@127.0.0.1:5433/agri"
                   "?sslmode=require")
    kv = login_url("host=127.0.0.1 port=5433 dbname=agri user=agri", "api", "x y")
    assert psycopg.conninfo.conninfo_to_dict(kv) == {
        "host": "127.0.0.1", "port": "5433", "dbname": "agri", "user": "agri_api_login",
        "password": "x y"}


def test_each_process_finds_its_own_database_url(tmp_path, monkeypatch):
    from agri.settings import Settings, SettingsError

    for name in ("AGRI_DATABASE_URL", "AGRI_DATABASE_READ_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(home=tmp_path)
    with pytest.raises(SettingsError, match="set AGRI_DATABASE_URL"):
        settings.db_url("api")
    (tmp_path / "stack.json").write_text('{"database_url": "postgresql://owner@h/agri"}')
    assert settings.db_url() == "postgresql://owner@h/agri"
    with pytest.raises(SettingsError, match="no database login for 'ingest'"):
        settings.db_url("ingest")
    (tmp_path / "stack.json").write_text(
        '{"database_url": "postgresql://owner@h/agri", "database_urls": '
        '{"owner": "postgresql://owner@h/agri", "api": "postgresql://api@h/agri"}}')
    assert settings.db_url("api") == "postgresql://api@h/agri"
    assert settings.db_read_url() is None
    explicit = Settings(home=tmp_path, database_url="postgresql://x@h/agri",
                        database_read_url="postgresql://x@replica/agri")
    assert explicit.db_url("api") == explicit.db_url() == "postgresql://x@h/agri"
    assert explicit.db_read_url() == "postgresql://x@replica/agri"


def test_analytics_login_writes_results_but_not_readings_devices_or_users(platform, logins):
    url = logins["analytics"]
    assert _run(url, "SELECT count(*) FROM readings_daily")[0][0] >= 0
    _run(url, "INSERT INTO analytics_runs (schedule, run_for, status, taken_by) VALUES "
              "('roles-test', '2000-01-01', 'done', 'test') ON CONFLICT DO NOTHING")
    _run(url, "DELETE FROM analytics_runs WHERE schedule = 'roles-test'")
    for statement in (
        "SELECT token_hash FROM api_tokens",
        "SELECT password_hash FROM users",
        "SELECT password_hash FROM devices",
        "INSERT INTO readings VALUES ('d', 'm', now(), 1, now())",
        "DELETE FROM readings",
        "UPDATE devices SET revoked_at = NULL",
        "UPDATE users SET role = 'admin'",
        "DELETE FROM advisories",
        "DROP TABLE advisories",
        "UPDATE fields SET owner = NULL",
        "CREATE TABLE public.planted (x int)",
    ):
        with pytest.raises(DENIED):
            _run(url, statement)
    # The API reads the results and cannot change them; it publishes and
    # edits advisories and records observations (a removed one is kept in
    # observation_removals), but never changes what a rule computed: its key,
    # fields and evidence.
    for statement in ("DELETE FROM field_stages", "UPDATE field_harvest_windows SET opens = NULL",
                      "UPDATE advisories SET key = 'x'", "UPDATE advisories SET evidence = '{}'",
                      "UPDATE advisories SET field_ids = '{}'", "DELETE FROM advisories"):
        with pytest.raises(DENIED):
            _run(logins["api"], statement)
