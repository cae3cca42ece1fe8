"""The `agri` command as an operator uses it, against the test stack."""

from __future__ import annotations

import orjson
import psycopg

from tests.test_ingest_e2e import FIELD


def test_db_migrate_is_idempotent(platform):
    before = platform.sql("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert "up to date" in platform.cli("db", "migrate").stdout
    after = platform.sql("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert after == before and [v for v, _ in after][:3] == ["001", "002", "003"]


def test_devices_add_list_show_revoke(platform):
    out = orjson.loads(platform.cli("devices", "add", "--id", "cli-soil-1", "--profile", "soil",
                                    "--json").stdout)
    assert set(out) == {"device_id", "username", "password"}
    stored = platform.sql("SELECT password_hash FROM devices WHERE id = 'cli-soil-1'")[0][0]
    assert out["password"] not in stored and stored.startswith("$7$")
    listed = orjson.loads(platform.cli("devices", "list", "--json").stdout)
    assert any(d["device_id"] == "cli-soil-1" and d["profile"] == "soil" for d in listed)
    shown = orjson.loads(platform.cli("devices", "show", "cli-soil-1").stdout)
    assert shown["revoked_at"] is None
    platform.cli("devices", "revoke", "cli-soil-1")
    assert orjson.loads(platform.cli("devices", "show", "cli-soil-1").stdout)["revoked_at"]
    again = platform.cli("devices", "add", "--id", "cli-soil-1", "--profile", "soil",
                         check=False)
    assert again.returncode == 2 and "already registered" in again.stderr


def test_unknown_profile_and_device_are_clear_errors(platform):
    bad = platform.cli("devices", "add", "--id", "cli-x", "--profile", "radar", check=False)
    assert bad.returncode == 2 and "paddy-water" in bad.stderr
    missing = platform.cli("devices", "show", "nobody-here", check=False)
    assert missing.returncode == 1 and "no device" in missing.stderr


def test_users_add_prints_the_token_once(platform):
    out = orjson.loads(platform.cli("users", "add", "--name", "cli-officer", "--role", "officer",
                                    "--region", "Hirosaki", "Kuroishi", "--json").stdout)
    assert out["user"] == "cli-officer" and out["role"] == "officer" and len(out["token"]) > 30
    assert len(out["password"]) >= 10
    row = platform.sql("SELECT u.regions, t.token_hash, u.password_hash, u.must_change_password "
                       "FROM users u JOIN api_tokens t ON t.user_name = u.name "
                       "WHERE u.name = 'cli-officer'")[0]
    assert row[0] == ["Hirosaki", "Kuroishi"] and out["token"].encode() not in bytes(row[1])
    assert out["password"] not in row[2] and row[3] is True
    dup = platform.cli("users", "add", "--name", "cli-officer", "--role", "farmer", check=False)
    assert dup.returncode == 2 and "exists" in dup.stderr


def test_fields_import(platform, tmp_path):
    data = orjson.loads(orjson.dumps(FIELD))
    data["features"][0]["properties"].update(id="cli-field", owner="cli-farmer")
    path = tmp_path / "fields.geojson"
    path.write_bytes(orjson.dumps(data))
    refused = platform.cli("fields", "import", str(path), check=False)
    assert refused.returncode == 2 and "cli-farmer" in refused.stderr
    done = platform.cli("fields", "import", str(path), "--create-owners")
    assert "imported 1 fields (season 2026)" in done.stdout and "cli-farmer" in done.stdout
    area = platform.sql("SELECT area_m2 FROM fields WHERE id = 'cli-field'")[0][0]
    assert 2500 < area < 3800  # about 34 m x 100 m
    data["features"][0]["geometry"]["coordinates"][0] = [
        [40.6, 140.46], [40.6, 140.4604], [40.6009, 140.4604], [40.6, 140.46]]
    path.write_bytes(orjson.dumps(data))
    swapped = platform.cli("fields", "import", str(path), check=False)
    assert swapped.returncode == 2 and "longitude, latitude" in swapped.stderr


def test_users_token_rotate_replaces_the_token(platform, api):
    import httpx

    first = orjson.loads(platform.cli("users", "add", "--name", "cli-rotor", "--role",
                                      "developer", "--json").stdout)["token"]
    second = orjson.loads(platform.cli("users", "token", "cli-rotor", "--rotate",
                                       "--json").stdout)["token"]
    assert second != first

    def status(token: str) -> int:
        return httpx.get(f"{api}/api/v1/rejects", headers={
            "Authorization": f"Bearer {token}"}).status_code

    assert status(first) == 401 and status(second) == 200
    shown = platform.cli("users", "token", "cli-rotor", check=False)
    assert shown.returncode == 2 and "--rotate" in shown.stderr
    missing = platform.cli("users", "token", "cli-nobody", "--rotate", check=False)
    assert missing.returncode == 2 and "no user" in missing.stderr


def test_a_field_imported_again_gets_a_new_season_and_keeps_its_history(platform, tmp_path):
    data = orjson.loads(orjson.dumps(FIELD))
    props = data["features"][0]["properties"]
    path = tmp_path / "fields.geojson"

    def load(year: int, cultivar: str, day: str = "05-20") -> str:
        props.update(id="cli-paddy", owner="cli-season-farmer", cultivar=cultivar,
                     transplanted_on=f"{year}-{day}")
        path.write_bytes(orjson.dumps(data))
        return platform.cli("fields", "import", str(path), "--create-owners").stdout

    assert "season 2025" in load(2025, "masshigura")
    assert "season 2026" in load(2026, "seiten-no-hekireki")
    load(2026, "seiten-no-hekireki", "05-24")  # the same season corrected
    load(2024, "tsugaru-roman")  # an earlier season recorded late
    seasons = platform.sql("SELECT year, cultivar, transplanted_on::text FROM field_seasons "
                           "WHERE field_id = 'cli-paddy' ORDER BY year")
    assert seasons == [(2024, "tsugaru-roman", "2024-05-20"), (2025, "masshigura", "2025-05-20"),
                       (2026, "seiten-no-hekireki", "2026-05-24")]
    assert platform.sql("SELECT count(*), min(cultivar), min(transplanted_on)::text FROM fields "
                        "WHERE id = 'cli-paddy'") == [(1, "seiten-no-hekireki", "2026-05-24")]


def test_users_password_replaces_the_password_and_ends_sessions(platform):
    from agri.api import passwords

    out = orjson.loads(platform.cli("users", "add", "--name", "cli-forgot", "--role", "farmer",
                                    "--json").stdout)
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("INSERT INTO page_sessions (id_hash, user_name, csrf_token, via, "
                     "expires_at) VALUES ('\\x01', 'cli-forgot', 'c', 'password', "
                     "now() + interval '1 day')")
    new = orjson.loads(platform.cli("users", "password", "cli-forgot", "--json").stdout)
    stored = platform.sql("SELECT password_hash, must_change_password FROM users "
                          "WHERE name = 'cli-forgot'")[0]
    assert passwords.verify(new["password"], stored[0]) and stored[1] is True
    assert not passwords.verify(out["password"], stored[0])
    assert platform.sql("SELECT count(*) FROM page_sessions WHERE user_name = 'cli-forgot' "
                        "AND ended_at IS NULL") == [(0,)]
    missing = platform.cli("users", "password", "no-such-user", check=False)
    assert missing.returncode == 2 and "no user" in missing.stderr


def test_api_with_two_workers_answers_and_stops(platform):
    import signal
    import subprocess
    import sys

    import httpx

    from agri.deploy.servers import free_port
    from tests.fix_stack import api_answers, wait_for

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agri.cli", "api", "--port", str(port),
                             "--workers", "2"], env=platform.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return api_answers(httpx.get(base + "/healthz", timeout=1))
        except httpx.HTTPError:
            return proc.poll() is not None

    try:
        wait_for(up, what="the two-worker API")
        assert proc.poll() is None
        me = httpx.get(base + "/api/v1/me",
                       headers={"Authorization": f"Bearer {platform.admin_token}"})
        assert me.status_code == 200 and me.json()["name"] == "admin"
        assert httpx.get(base + "/api/v1/me", headers={"Authorization": "Bearer x"}
                         ).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
