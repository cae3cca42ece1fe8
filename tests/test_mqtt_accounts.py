"""The views EMQX authenticates and authorises from (migration 006), checked
by running EMQX's own queries from deploy/emqx/emqx.conf and computing in
Python what EMQX computes: PBKDF2 of the password with the row's salt bytes,
compared as lowercase hex (emqx_passwd). EMQX itself does not run here."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import orjson
import psycopg
import pytest
from psycopg.rows import dict_row

from agri.devices import credentials, topics

CONF = Path(__file__).resolve().parents[1] / "deploy" / "emqx" / "emqx.conf"
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def _conf() -> str:
    return CONF.read_text()


def _setting(name: str) -> str:
    found = re.findall(rf"^\s*{name}\s*=\s*(.+?)\s*$", _conf(), re.M)
    assert len(found) == 1, f"{name} should be set once in {CONF}"
    return found[0]


def _queries() -> list[str]:
    return [orjson.loads(q) for q in re.findall(r'^\s*query\s*=\s*(".*")\s*$', _conf(), re.M)]


def emqx_query(conn: psycopg.Connection, query: str, **client: str) -> list[dict]:
    """Run one of EMQX's queries as EMQX does: its ${...} placeholders bound
    as parameters (a prepared statement), never pasted into the SQL."""
    sql_text = PLACEHOLDER.sub(lambda m: f"%({m.group(1)})s", query)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql_text, client).fetchall()


def emqx_accepts(conn: psycopg.Connection, *, username: str, clientid: str,
                 password: str) -> bool:
    """EMQX's pbkdf2 check: hex(pbkdf2(mac_fun, password, salt, iterations,
    dk_length)) == password_hash, salt being the bytes of the salt column."""
    rows = emqx_query(conn, _queries()[0], username=username, clientid=clientid)
    if not rows:
        return False
    row = rows[0]
    derived = hashlib.pbkdf2_hmac(_setting("mac_fun"), password.encode(), bytes(row["salt"]),
                                  int(_setting("iterations")), int(_setting("dk_length")))
    return derived.hex() == row["password_hash"] and row["is_superuser"] is False


def acl(conn: psycopg.Connection, username: str) -> set[tuple[str, str, str]]:
    return {(r["permission"], r["action"], r["topic"])
            for r in emqx_query(conn, _queries()[1], username=username)}


def _words_match(requested: list[str], rule: list[str]) -> bool:
    """Does the rule's filter cover the requested topic or filter (EMQX's
    topic match, where a requested wildcard is only covered by a wildcard)?"""
    if requested and requested[0].startswith("$") and rule and rule[0] in ("+", "#"):
        return False
    for i, word in enumerate(rule):
        if word == "#":
            return True
        if i >= len(requested):
            return False
        if word == "+":
            if requested[i] == "#":
                return False
            continue
        if word != requested[i]:
            return False
    return len(requested) == len(rule)


def allowed(rules: set[tuple[str, str, str]], action: str, topic: str) -> bool:
    """EMQX's decision with no_match = deny; a shared subscription is checked
    against its plain filter, as EMQX does."""
    if action == "subscribe" and topic.startswith("$share/"):
        topic = topic.split("/", 2)[2]
    return any(permission == "allow" and act in (action, "all")
               and _words_match(topic.split("/"), rule.split("/"))
               for permission, act, rule in rules)


def _add(platform, device_id: str, profile: str) -> str:
    out = platform.cli("devices", "add", "--id", device_id, "--profile", profile, "--json")
    return orjson.loads(out.stdout)["password"]


@pytest.fixture(scope="module")
def hostile_device(platform) -> str:
    _add(platform, "emqx-hostile", "soil")
    return "emqx-hostile"


@pytest.fixture
def conn(platform):
    with psycopg.connect(platform.db_url, autocommit=True) as c:
        yield c


def test_emqx_settings_match_the_registry():
    assert _setting("mac_fun") == "sha512"
    assert int(_setting("iterations")) == credentials.PBKDF2_ITERATIONS
    assert int(_setting("dk_length")) == credentials.HASH_BYTES
    assert _setting("no_match") == "deny"
    authn, authz = _queries()
    assert "FROM mqtt_accounts" in authn and "${clientid}" in authn
    assert "FROM mqtt_acl" in authz
    binds = re.findall(r'^\s*bind\s*=\s*"([^"]+)"', _conf(), re.M)
    assert binds and all(b.startswith("127.0.0.1:") for b in binds), binds


def test_device_password_from_the_cli_is_what_emqx_accepts(platform, conn):
    pw = _add(platform, "emqx-soil-1", "soil")
    other_pw = _add(platform, "emqx-soil-2", "soil")
    row = emqx_query(conn, "SELECT * FROM mqtt_accounts WHERE username = ${u}", u="emqx-soil-1")
    assert len(row) == 1 and row[0]["iterations"] == credentials.PBKDF2_ITERATIONS
    assert re.fullmatch(r"[0-9a-f]{128}", row[0]["password_hash"])
    assert len(bytes(row[0]["salt"])) == credentials.SALT_BYTES
    assert emqx_accepts(conn, username="emqx-soil-1", clientid="emqx-soil-1", password=pw)
    # Another device's valid password, a wrong one, another device's client id
    # and ingest's client id are all refused.
    assert not emqx_accepts(conn, username="emqx-soil-1", clientid="emqx-soil-1",
                            password=other_pw)
    assert not emqx_accepts(conn, username="emqx-soil-1", clientid="emqx-soil-1",
                            password=pw + "x")
    assert not emqx_accepts(conn, username="emqx-soil-1", clientid="emqx-soil-2", password=pw)
    assert not emqx_accepts(conn, username="emqx-soil-1", clientid="agri-ingest-1", password=pw)
    assert not emqx_accepts(conn, username="emqx-soil-1", clientid="", password=pw)
    assert emqx_accepts(conn, username="emqx-soil-2", clientid="emqx-soil-2", password=other_pw)


@pytest.mark.parametrize("username, clientid", [
    ("' OR '1'='1", "' OR '1'='1"),
    ("emqx-hostile%", "emqx-hostile%"),
    (".*", ".*"),
    ("emqx-hostile", ".*"),
    ("emqx-hostile", "emqx-hostile\nx"),
    ("agri-ingest", "agri-ingest-1"),
    ("x" * 70_000, "y"),
])
def test_hostile_usernames_and_client_ids_find_no_account(hostile_device, conn, username,
                                                          clientid):
    assert emqx_query(conn, _queries()[0], username=username, clientid=clientid) == []
    if username != hostile_device:
        assert acl(conn, username) == set()


def test_revoked_device_is_absent(platform, conn):
    pw = _add(platform, "emqx-revoked-1", "paddy-water")
    assert emqx_accepts(conn, username="emqx-revoked-1", clientid="emqx-revoked-1", password=pw)
    platform.cli("devices", "revoke", "emqx-revoked-1")
    assert emqx_query(conn, "SELECT 1 FROM mqtt_accounts WHERE username = ${u}",
                      u="emqx-revoked-1") == []
    assert acl(conn, "emqx-revoked-1") == set()


@pytest.mark.parametrize("profile", ["soil", "drone"])
def test_device_acl_is_its_own_topics_and_its_command_topic(platform, conn, profile):
    device = f"emqx-acl-{profile}"
    _add(platform, device, profile)
    rules = acl(conn, device)
    want = {("allow", "publish", t) for t in topics.device_publish_topics(device, profile)}
    want.add(("allow", "subscribe", topics.commands_topic(device)))
    assert rules == want
    assert allowed(rules, "publish", topics.senml_topic(device))
    assert allowed(rules, "publish", topics.flights_topic(device)) == (profile == "drone")
    assert allowed(rules, "subscribe", topics.commands_topic(device))
    other = "emqx-acl-other"
    for hostile in ("#", "+/#", "$SYS/#", "agri/v1/devices/+/+", "agri/v1/#",
                    topics.shared("agri/v1/devices/+/+"), "$share/x/#",
                    f"agri/v1/devices/{device}/#", f"agri/v1/devices/{device}/+",
                    "agri/v1/devices/+/commands", topics.commands_topic(other),
                    topics.senml_topic(device)):
        assert not allowed(rules, "subscribe", hostile), hostile
    for hostile in (topics.senml_topic(other), f"agri/v1/devices/{device}/commands",
                    f"agri/v1/devices/{device}/senml/x", "v3/app/devices/x/up",
                    topics.flights_topic(other)):
        assert not allowed(rules, "publish", hostile), hostile


def test_service_accounts(conn):
    pw = credentials.new_password()
    conn.execute("INSERT INTO mqtt_service_accounts (name, password_hash) VALUES "
                 "('agri-ingest', %s), ('agri-simulator', %s)",
                 (credentials.hash_password(pw), credentials.hash_password(pw)))
    try:
        assert emqx_accepts(conn, username="agri-ingest", clientid="agri-ingest-1", password=pw)
        assert emqx_accepts(conn, username="agri-simulator", clientid="agri-simulator-live-7",
                            password=pw)
        for clientid in ("agri-ingest", "agri-simulator-1", "emqx-soil-1", "agri-ingest-1 x"):
            assert not emqx_accepts(conn, username="agri-ingest", clientid=clientid, password=pw)
        ingest = acl(conn, "agri-ingest")
        assert ingest == {("allow", "subscribe", f) for f in (*topics.INGEST_FILTERS, "$SYS/#")} | {
            ("allow", "publish", f) for f in topics.INGEST_PUBLISH_FILTERS}
        for f in topics.INGEST_FILTERS:
            assert allowed(ingest, "subscribe", topics.shared(f))
        assert not allowed(ingest, "publish", topics.senml_topic("x"))
        sim = acl(conn, "agri-simulator")
        assert {t for _, a, t in sim if a == "publish"} == set(topics.SIMULATOR_PUBLISH_FILTERS)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO mqtt_service_accounts (name, password_hash) "
                         "VALUES ('agri-admin', %s)", (credentials.hash_password(pw),))
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE mqtt_service_accounts SET password_hash = 'plain' "
                         "WHERE name = 'agri-ingest'")
        conn.execute("UPDATE mqtt_service_accounts SET disabled_at = now() "
                     "WHERE name = 'agri-ingest'")
        assert not emqx_accepts(conn, username="agri-ingest", clientid="agri-ingest-1",
                                password=pw)
        assert acl(conn, "agri-ingest") == set()
    finally:
        conn.execute("DELETE FROM mqtt_service_accounts")


@pytest.mark.parametrize("role, may_read", [("agri_broker", True), ("agri_api", False),
                                             ("agri_ingest", False)])
def test_only_the_broker_role_reads_the_views(conn, role, may_read):
    for view in ("mqtt_accounts", "mqtt_acl"):
        with conn.transaction():
            conn.execute(f"SET LOCAL ROLE {role}")
            if may_read:
                conn.execute(f"SELECT count(*) FROM {view}")
            else:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    with conn.transaction():
                        conn.execute(f"SELECT count(*) FROM {view}")
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("SELECT password_hash FROM mqtt_service_accounts")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                conn.execute("SELECT password_hash FROM devices")
