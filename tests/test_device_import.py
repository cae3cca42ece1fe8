"""Bulk device registration (``agri devices import`` and
``POST /api/v1/devices/import``) against the real database and broker: all
or none, every bad row named, each device able to connect and publish with
the password printed once, admins only through the API."""

from __future__ import annotations

import time

import httpx
import orjson
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.devices import bridges, device_import, provisioning
from agri.devices.dynsec import DynSec
from agri.devices.topics import senml_topic
from tests.fix_stack import api_server, publisher, wait_for
from tests.test_ingest_e2e import field_at, publish

HEADER = "id,profile,field,owner\n"


@pytest.fixture(scope="module")
def world(platform):
    """Two farmers' fields (Hirosaki, Mutsu), a developer, an officer, and a
    device already registered."""
    tokens = {}
    with psycopg.connect(platform.db_url) as conn:
        for name, role, regions in (("imp-farmer", "farmer", []), ("imp-other", "farmer", []),
                                    ("imp-dev", "developer", []),
                                    ("imp-officer", "officer", ["Hirosaki"])):
            tokens[name] = add_user(conn, name=name, role=role, regions=regions).token
        import_fields(conn, parse_features(field_at("imp-f1", "imp-farmer", "Hirosaki", 140.50)))
        import_fields(conn, parse_features(field_at("imp-f2", "imp-other", "Mutsu", 141.20)))
    platform.add_device("imp-taken", "soil", dev_eui="00a1b2c3d4e5f6aa")
    with psycopg.connect(platform.db_url) as conn:
        bridges.add(conn, platform.admin_url(), name="imp-tts", kind="tts",
                    application="imp-paddy", tenant="ttn")
        bridges.add(conn, platform.admin_url(), name="imp-cs", kind="chirpstack",
                    application="5b0c7e2a-1f3d-4c8b-9e6a-7d2f1a3b4c5d")
        bridges.add(conn, platform.admin_url(), name="imp-gone", kind="tts",
                    application="imp-gone")
        bridges.revoke(conn, platform.admin_url(), "imp-gone")
    return tokens


def _clients(platform) -> set[str]:
    with DynSec(platform.admin_url()) as broker:
        return set(broker.run({"command": "listClients", "verbose": False})[0]["clients"])


def _devices(platform, prefix: str) -> int:
    return platform.sql("SELECT count(*) FROM devices WHERE id LIKE %s", (prefix + "%",))[0][0]


def _write(tmp_path, content: str | bytes, name: str = "devices.csv"):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _publishes(platform, device_id: str, password: str, metric: str, value: float) -> None:
    """The device connects with its password, publishes, and the reading is stored."""
    client = publisher(platform.device_url(device_id, password), client_id=device_id)
    try:
        publish(client, senml_topic(device_id), orjson.dumps([{"n": metric, "v": value}]))
        wait_for(lambda: platform.sql("SELECT count(*) FROM readings WHERE device_id = %s",
                                      (device_id,))[0][0] == 1,
                 what=f"the reading of {device_id}")
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_good_file_imports_and_each_device_publishes(platform, world, ingest, tmp_path):
    path = _write(tmp_path, "id,profile,field,owner,dev_eui\n"
                            "imp-good-1,paddy-water,imp-f1,imp-farmer,\n"
                            "imp-good-2,weather-station,imp-f1,,\n"
                            " imp-good-3 , soil ,,imp-dev,70B3D57ED0051A2C\n")
    out = orjson.loads(platform.cli("devices", "import", str(path), "--json").stdout)
    assert [d["device_id"] for d in out] == ["imp-good-1", "imp-good-2", "imp-good-3"]
    assert all(set(d) == {"device_id", "username", "password", "bridge"} and d["username"] ==
               d["device_id"] and d["bridge"] is None for d in out)
    stored = dict(platform.sql("SELECT id, password_hash FROM devices WHERE id LIKE 'imp-good-%%'"))
    assert len(stored) == 3
    for d in out:
        assert stored[d["device_id"]].startswith("$7$") and d["password"] not in \
            stored[d["device_id"]]
    rows = platform.sql("SELECT id, profile, field_id, owner, dev_eui FROM devices "
                        "WHERE id LIKE 'imp-good-%%' ORDER BY id")
    assert rows == [("imp-good-1", "paddy-water", "imp-f1", "imp-farmer", None),
                    ("imp-good-2", "weather-station", "imp-f1", None, None),
                    ("imp-good-3", "soil", None, "imp-dev", "70b3d57ed0051a2c")]
    password = {d["device_id"]: d["password"] for d in out}
    _publishes(platform, "imp-good-1", password["imp-good-1"], "water_temp", 21.5)
    _publishes(platform, "imp-good-2", password["imp-good-2"], "air_temp", 18.0)
    _publishes(platform, "imp-good-3", password["imp-good-3"], "soil_temp", 15.0)

    listed = {d["device_id"]: d for d in orjson.loads(
        platform.cli("devices", "list", "--json").stdout)}
    one = listed["imp-good-1"]
    assert one["status"] == "active" and one["profile"] == "paddy-water"
    assert one["field"] == "imp-f1" and one["last_seen"] is not None
    seen = platform.sql("SELECT max(time) FROM readings WHERE device_id = 'imp-good-1'")[0][0]
    assert one["last_seen"] == seen.isoformat()
    assert listed["imp-taken"]["last_seen"] is None


def test_the_table_shows_each_password_once(platform, world, tmp_path):
    path = _write(tmp_path, HEADER + "imp-table-1,soil,,\nimp-table-2,drone,,imp-dev\n")
    done = platform.cli("devices", "import", str(path))
    lines = done.stdout.splitlines()
    assert "imported 2 devices" in lines[0] and lines[1].split() == ["id", "password"]
    table = dict(line.split() for line in lines[2:])
    assert set(table) == {"imp-table-1", "imp-table-2"}
    client = publisher(platform.device_url("imp-table-2", table["imp-table-2"]),
                       client_id="imp-table-2")
    client.loop_stop()
    client.disconnect()
    listed = {d["device_id"]: d for d in orjson.loads(
        platform.cli("devices", "list", "--json").stdout)}
    platform.cli("devices", "revoke", "imp-table-1")
    listed = {d["device_id"]: d for d in orjson.loads(
        platform.cli("devices", "list", "--json").stdout)}
    assert listed["imp-table-1"]["status"] == "revoked"
    assert listed["imp-table-2"]["status"] == "active"


def test_one_bad_row_imports_nothing(platform, world, tmp_path):
    before_clients, before = _clients(platform), platform.sql("SELECT count(*) FROM devices")
    good = "".join(f"imp-atomic-{n},paddy-water,imp-f1,\n" for n in range(20))
    path = _write(tmp_path, HEADER + good + "imp-atomic-x,radar,,\n" + good.replace(
        "atomic-", "atomic-b"))
    done = platform.cli("devices", "import", str(path), check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert "nothing was imported" in done.stderr
    assert "line 22, column profile: unknown profile 'radar'" in done.stderr
    assert "Traceback" not in done.stderr
    assert platform.sql("SELECT count(*) FROM devices") == before
    assert _devices(platform, "imp-atomic") == 0
    assert _clients(platform) == before_clients


def test_a_broker_refusal_registers_nothing(platform, world, tmp_path):
    """The broker refuses the last account (a client of that name exists
    that is not a device's): the registry rolls back, and the accounts made
    before it are removed again."""
    with DynSec(platform.admin_url()) as broker:
        broker.run({"command": "createClient", "username": "imp-bridge", "password": "x" * 20})
    before_clients = _clients(platform)
    rows = [(f"imp-refused-{n}", "soil", None, None, None) for n in range(5)]
    rows.append(("imp-bridge", "soil", None, None, None))
    with psycopg.connect(platform.db_url) as conn, pytest.raises(Exception, match="imp-bridge"):
        provisioning.import_devices(conn, platform.admin_url(), rows)
    assert _devices(platform, "imp-refused") == 0 and _devices(platform, "imp-bridge") == 0
    assert _clients(platform) == before_clients


def _rejected(platform, content: str | bytes) -> list[str]:
    """The errors of a file, checked as `agri devices import` checks it."""
    data = content.encode() if isinstance(content, str) else content
    with psycopg.connect(platform.db_url) as conn, pytest.raises(
            device_import.ImportRejected) as caught:
        device_import.check(conn, device_import.parse_csv(data))
    return [str(e) for e in caught.value.errors]


BAD_FILES = {
    "unknown profile": (HEADER + "imp-b1,soil,,\nimp-b2,radar,,\n",
                        "line 3, column profile: unknown profile 'radar'; choose one of: "
                        "paddy-water"),
    "unknown field": (HEADER + "imp-b1,soil,imp-nofield,\n",
                      "line 2, column field: unknown field 'imp-nofield'"),
    "unknown owner": (HEADER + "imp-b1,soil,,imp-nobody\n",
                      "line 2, column owner: unknown owner 'imp-nobody'"),
    "duplicate id in the file": (HEADER + "imp-b1,soil,,\nimp-b2,soil,,\nimp-b1,soil,,\n",
                                 "line 4, column id: device 'imp-b1' is also on line 2"),
    "already registered": (HEADER + "imp-taken,soil,,\n",
                           "line 2, column id: device 'imp-taken' is already registered"),
    "bad id syntax": (HEADER + "imp b1,soil,,\n", "line 2, column id: device id 'imp b1' "
                                                  "must match"),
    "id too long": (HEADER + "x" * 65 + ",soil,,\n", "line 2, column id: device id"),
    "reserved prefix": (HEADER + "agri-ingest,soil,,\n",
                        "line 2, column id: device ids starting with 'agri-' are kept"),
    "no id": (HEADER + ",soil,,\n", "line 2, column id: no device id"),
    "no profile": (HEADER + "imp-b1,,,\n", "line 2, column profile: no profile"),
    "bad DevEUI": ("id,profile,field,owner,dev_eui\nimp-b1,soil,,,12345\n",
                   "line 2, column dev_eui: DevEUI '12345' must be 16 hexadecimal digits"),
    "DevEUI taken": ("id,profile,field,owner,dev_eui\nimp-b1,soil,,,00A1B2C3D4E5F6AA\n",
                     "line 2, column dev_eui: DevEUI 00A1B2C3D4E5F6AA is registered"),
    "DevEUI twice": ("dev_eui,id,profile,field,owner\n0000000000000001,imp-b1,soil,,\n"
                     "0000000000000001,imp-b2,soil,,\n",
                     "line 3, column dev_eui: DevEUI 0000000000000001 is also on line 2"),
    "unknown bridge": ("id,profile,field,owner,bridge\nimp-b1,soil,,,imp-nobridge\n",
                       "line 2, column bridge: no bridge 'imp-nobridge': add it with "
                       "`agri bridges add`"),
    "revoked bridge": ("id,profile,field,owner,bridge\nimp-b1,soil,,,imp-gone\n",
                       "line 2, column bridge: bridge 'imp-gone' is revoked"),
    "ChirpStack bridge without a DevEUI": (
        "id,profile,field,owner,dev_eui,bridge\nimp-b1,soil,,,,imp-cs\n",
        "line 2, column bridge: bridge 'imp-cs' is ChirpStack, which names devices by DevEUI"),
    "bad bridge name": ("id,profile,field,owner,bridge\nimp-b1,soil,,,Imp Bridge\n",
                        "line 2, column bridge: bridge name 'Imp Bridge' must match"),
    "NUL in a value": (HEADER + "imp-b1,soil,imp\x00f1,\n", "line 2, column field: too long"),
    "too few values": (HEADER + "imp-b1,soil\n", "line 2: 2 values, but the header has 4"),
    "missing header": ("imp-b1,soil,,\n", "line 1: missing header: the first line must be "
                                          "id,profile,field,owner"),
    "wrong header": ("id,profile,field,user\nimp-b1,soil,,\n",
                     "line 1: wrong header (unknown column 'user'; no column 'owner')"),
    "column twice": ("id,profile,field,owner,id\nimp-b1,soil,,,x\n",
                     "column 'id' twice"),
    "empty file": ("", "the file is empty"),
    "blank lines only": ("\n \n", "the file is empty"),
    "header only": (HEADER, "the file has a header but no devices"),
    "non-UTF-8 bytes": (HEADER.encode() + "imp-b1,soil,,田中\n".encode("shift_jis"),
                        "line 2: byte 37 is not UTF-8: save the file as UTF-8"),
    "bad quoting": (HEADER + 'imp-b1,"soil,,\n', "not readable as CSV"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_each_kind_of_bad_row_is_named(platform, world, kind):
    content, expected = BAD_FILES[kind]
    errors = _rejected(platform, content)
    assert any(expected in e for e in errors), errors
    assert _devices(platform, "imp-b") == 0


def test_devices_behind_bridges_import_without_accounts_of_their_own(platform, world,
                                                                     tmp_path):
    before = _clients(platform)
    path = _write(tmp_path, "id,profile,field,owner,dev_eui,bridge\n"
                            "imp-lora-1,paddy-water,imp-f1,imp-farmer,,imp-tts\n"
                            "imp-lora-2,soil,,,70B3D57ED0051B01,imp-cs\n"
                            "imp-lora-3,soil,,,,\n")
    out = orjson.loads(platform.cli("devices", "import", str(path), "--json").stdout)
    assert [(d["device_id"], d["bridge"], d["username"] is None, d["password"] is None)
            for d in out] == [("imp-lora-1", "imp-tts", True, True),
                              ("imp-lora-2", "imp-cs", True, True),
                              ("imp-lora-3", None, False, False)]
    assert platform.sql("SELECT id, bridge, dev_eui FROM devices WHERE id LIKE 'imp-lora-%%' "
                        "ORDER BY id") == [("imp-lora-1", "imp-tts", None),
                                           ("imp-lora-2", "imp-cs", "70b3d57ed0051b01"),
                                           ("imp-lora-3", None, None)]
    # Only the device that connects itself has a broker account.
    assert _clients(platform) - before == {"imp-lora-3"}
    table = platform.cli("devices", "import", str(_write(
        tmp_path, "id,profile,field,owner,bridge\nimp-lora-4,soil,,,imp-tts\n", "t.csv"))).stdout
    assert "imp-lora-4  (none: its uplinks come through bridge imp-tts)" in table


def test_excel_files_read_as_written():
    """Excel's "CSV UTF-8": a byte-order mark, CRLF line ends, quoted cells, and
    the columns in another order."""
    rows = device_import.parse_csv(
        "\ufeffOwner,ID,Profile,Field\r\n\"imp-dev\",imp-x1,soil,\r\n\r\n,imp-x2,drone,\r\n"
        .encode())
    assert [(r.line, r.device()) for r in rows] == [
        (2, ("imp-x1", "soil", None, None, "imp-dev")), (4, ("imp-x2", "drone", None, None, None))]


def test_every_bad_row_is_named_at_once(platform, world):
    errors = _rejected(platform, HEADER + "imp-c1,radar,,\nimp-c2,soil,imp-nofield,imp-nobody\n"
                                          "agri-x,soil,,\n")
    assert errors == [
        "line 2, column profile: unknown profile 'radar'; choose one of: paddy-water, "
        "weather-station, soil, drone, water-gate",
        "line 3, column field: unknown field 'imp-nofield': import it first (agri fields "
        "import)",
        "line 3, column owner: unknown owner 'imp-nobody': no such user (agri users add)",
        "line 4, column id: device ids starting with 'agri-' are kept for the platform's own "
        "accounts; choose another id"]


def test_a_file_over_the_bounds_is_refused_whole(platform, world, tmp_path):
    rows = "".join(f"imp-big-{n},soil,,\n" for n in range(device_import.MAX_ROWS + 1))
    assert any(f"more than {device_import.MAX_ROWS:,} rows" in e
               for e in _rejected(platform, HEADER + rows))
    huge = _write(tmp_path, HEADER + "x" * (device_import.MAX_BYTES + 1))
    done = platform.cli("devices", "import", str(huge), check=False)
    assert done.returncode == 2 and "larger than 8 MB" in done.stderr
    missing = platform.cli("devices", "import", str(tmp_path / "nothing.csv"), check=False)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert _devices(platform, "imp-big") == 0


def test_a_thousand_devices_import_in_seconds(platform, world, tmp_path):
    n = 1000
    content = HEADER + "".join(f"imp-k-{i:04},paddy-water,imp-f1,imp-farmer\n"
                               for i in range(n))
    started = time.perf_counter()
    rows = device_import.parse_csv(content.encode())
    with psycopg.connect(platform.db_url) as conn:
        device_import.check(conn, rows)
        checked = time.perf_counter()
        imported = provisioning.import_devices(conn, platform.admin_url(),
                                               [r.device() for r in rows])
    done = time.perf_counter()
    print(f"\n{n} devices: parsed and checked in {checked - started:.2f} s, registered with "
          f"their broker accounts in {done - checked:.2f} s, {done - started:.2f} s in all")
    assert len(imported) == n and _devices(platform, "imp-k-") == n
    assert {f"imp-k-{i:04}" for i in range(n)} <= _clients(platform)
    last_id, last_password = imported[-1]
    client = publisher(platform.device_url(last_id, last_password), client_id=last_id)
    client.loop_stop()
    client.disconnect()
    assert done - started < 60


# -- through the API ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def importing_api(platform):
    """An API given a login that may register devices and the broker's admin
    account, as a deployment of given servers gives it both."""
    with api_server(platform, AGRI_DATABASE_URL=platform.db_url,
                    AGRI_MQTT_URL=platform.admin_url()) as base:
        yield base


def _post(base: str, token: str | None, body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, bytes):  # JSON that json.dumps cannot make (a lone surrogate)
        return httpx.post(base + "/api/v1/devices/import", content=body, timeout=60,
                          headers=headers | {"Content-Type": "application/json"})
    return httpx.post(base + "/api/v1/devices/import", json=body, headers=headers, timeout=60)


def test_an_admin_imports_through_the_api(platform, world, importing_api, ingest):
    before = _clients(platform)
    answer = _post(importing_api, platform.admin_token, {"devices": [
        {"id": "imp-api-1", "profile": "paddy-water", "field": "imp-f1", "owner": "imp-farmer"},
        {"id": "imp-api-2", "profile": "soil", "dev_eui": "70b3d57ed0051a2d", "field": ""},
        {"id": "imp-api-3", "profile": "soil", "bridge": "imp-tts"}]})
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["imported"] == 3 and [d["device_id"] for d in body["devices"]] == [
        "imp-api-1", "imp-api-2", "imp-api-3"]
    assert body["devices"][2] == {"device_id": "imp-api-3", "username": None,
                                  "password": None, "bridge": "imp-tts"}
    assert _clients(platform) - before == {"imp-api-1", "imp-api-2"}
    assert platform.sql("SELECT field_id, owner, dev_eui, bridge FROM devices "
                        "WHERE id LIKE 'imp-api-%%' ORDER BY id") == [
        ("imp-f1", "imp-farmer", None, None), (None, None, "70b3d57ed0051a2d", None),
        (None, None, None, "imp-tts")]
    _publishes(platform, "imp-api-1", body["devices"][0]["password"], "water_level", 0.05)


def test_bad_rows_through_the_api_are_a_named_422(platform, world, importing_api):
    before = _clients(platform)
    answer = _post(importing_api, platform.admin_token, {"devices": [
        {"id": "imp-api-bad-1", "profile": "soil"},
        {"id": "imp-api-bad-2", "profile": "radar"},
        {"id": "imp-api-bad-1", "profile": "soil", "owner": "imp-nobody"},
        {"id": "imp-taken", "profile": "soil"}]})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert {(tuple(d["loc"]), d["msg"].split(";")[0].split(":")[0]) for d in detail} == {
        (("body", "devices", 1, "profile"), "unknown profile 'radar'"),
        (("body", "devices", 2, "id"), "device 'imp-api-bad-1' is also on devices[0]"),
        (("body", "devices", 2, "owner"), "unknown owner 'imp-nobody'"),
        (("body", "devices", 3, "id"), "device 'imp-taken' is already registered "
                                       "(ids of revoked devices are not given again)")}
    assert _devices(platform, "imp-api-bad") == 0 and _clients(platform) == before


@pytest.mark.parametrize("body", [
    {"devices": []}, {"devices": [{"id": "imp-h\x00", "profile": "soil"}]},
    b'{"devices": [{"id": "imp-h\\ud800", "profile": "soil"}]}',
    b'{"devices": [{"id": "imp-h", "profile": "soil", "owner": "\\udfff"}]}',
    {"devices": [{"id": "imp-h", "profile": "soil", "field": "\x00"}]},
    {"devices": [{"id": "imp-h", "profile": "soil", "role": "admin"}]},
    {"devices": [{"id": 1, "profile": "soil"}]}, {"devices": "id,profile\n"}, [], "x", None,
    {"devices": [{"id": "imp-h", "profile": "soil", "owner": "o" * 300}]},
    {"devices": [{"id": f"imp-h{n}", "profile": "soil"} for n in range(1001)]}])
def test_hostile_bodies_are_a_4xx(platform, world, importing_api, body):
    answer = _post(importing_api, platform.admin_token, body)
    assert answer.status_code == 422, answer.text
    assert _devices(platform, "imp-h") == 0


@pytest.mark.parametrize("who", ["imp-farmer", "imp-officer", "imp-dev", None])
def test_only_admins_import(platform, world, importing_api, who):
    """Nobody but an admin registers a device: a developer or farmer who
    could would see another farmer's field by putting a device of their own
    on it."""
    before = _clients(platform)
    answer = _post(importing_api, world[who] if who else None, {"devices": [
        {"id": "imp-esc-1", "profile": "soil", "field": "imp-f2", "owner": who}]})
    assert answer.status_code == (403 if who else 401), answer.text
    assert _devices(platform, "imp-esc") == 0 and _clients(platform) == before


def test_a_device_imported_for_another_owners_field_grants_no_more(platform, world,
                                                                    importing_api):
    """The admin puts the developer's device on imp-other's field: the
    developer sees that device and the field, never the field owner's own
    device there; the other farmer sees neither."""
    platform.add_device("imp-own-2", "paddy-water", field_id="imp-f2", owner="imp-other")
    answer = _post(importing_api, platform.admin_token, {"devices": [
        {"id": "imp-proto-1", "profile": "soil", "field": "imp-f2", "owner": "imp-dev"}]})
    assert answer.status_code == 201, answer.text

    def get(who: str, path: str) -> int:
        return httpx.get(importing_api + path, headers={
            "Authorization": f"Bearer {world[who]}"}).status_code

    assert get("imp-dev", "/api/v1/devices/imp-proto-1") == 200
    assert get("imp-dev", "/api/v1/devices/imp-own-2") == 404
    assert get("imp-farmer", "/api/v1/devices/imp-proto-1") == 404
    assert get("imp-farmer", "/api/v1/fields/imp-f2") == 404
    assert get("imp-other", "/api/v1/devices/imp-proto-1") == 200
    listed = httpx.get(importing_api + "/api/v1/devices?limit=1000", headers={
        "Authorization": f"Bearer {world['imp-dev']}"}).json()["items"]
    owned = {r[0] for r in platform.sql("SELECT id FROM devices WHERE owner = 'imp-dev'")}
    assert {d["id"] for d in listed} == owned and "imp-proto-1" in owned


def test_an_api_without_the_rights_answers_503_and_imports_nothing(platform, world, api):
    """The API as `agri up` runs it: its own database login, which reads the
    registry only."""
    before = _clients(platform)
    answer = _post(api, platform.admin_token, {"devices": [{"id": "imp-503", "profile": "soil"}]})
    assert answer.status_code == 503, answer.text
    assert "may not register devices" in answer.json()["detail"]
    assert _devices(platform, "imp-503") == 0 and _clients(platform) == before
    # Bad rows are still named first.
    bad = _post(api, platform.admin_token, {"devices": [{"id": "imp-503", "profile": "radar"}]})
    assert bad.status_code == 422


def test_an_api_without_a_broker_admin_answers_503(platform, world):
    """A login that may register devices, but the broker address without an
    account (what `agri up` gives the API for its health check)."""
    anonymous = f"mqtt://127.0.0.1:{platform.stack.state.mqtt_port}"
    with api_server(platform, AGRI_DATABASE_URL=platform.db_url,
                    AGRI_MQTT_URL=anonymous) as base:
        answer = _post(base, platform.admin_token,
                       {"devices": [{"id": "imp-nobroker", "profile": "soil"}]})
    assert answer.status_code == 503, answer.text
    assert "no broker admin account" in answer.json()["detail"]
    assert _devices(platform, "imp-nobroker") == 0
