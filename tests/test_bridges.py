"""LoRaWAN network servers (The Things Stack, ChirpStack) connect as bridges
limited to their own application: with the real broker and ingest, a bridge
publishes only its application's uplinks (counted in the database, not in
acknowledgements), an uplink for a device of another application is
rejected with its reason, a revoked bridge is gone at once, and broker sync
leaves bridges and the devices behind them alone."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import orjson
import psycopg
import pytest

from agri import mqtt
from agri.devices import bridge_cli, bridges, topics
from agri.devices.dynsec import DynSec, role_acls
from agri.ingest import rejects
from agri.settings import Settings
from tests.fix_stack import publisher, wait_for
from tests.test_acl import rebuilt_broker

CS_APP = "6f1d3a52-0c4b-4e8a-9d3e-2b7c1a9e5f01"
CS_OTHER = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def tts_uplink(device_id: str, t: float, **values: float) -> bytes:
    return orjson.dumps({"end_device_ids": {"device_id": device_id},
                         "uplink_message": {"decoded_payload": values,
                                            "received_at": _rfc3339(t)}})


def chirpstack_uplink(dev_eui: str, t: float, **values: float) -> bytes:
    return orjson.dumps({"deviceInfo": {"devEui": dev_eui}, "time": _rfc3339(t),
                         "object": values})


def _run(platform, *argv: str) -> int:
    """``agri bridges ...`` through this module's own registration."""
    parser = argparse.ArgumentParser(prog="agri")
    bridge_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bridges", *argv])
    return args.func(args, Settings(home=platform.home, database_url=None, mqtt_url=None))


def _add(platform, capsys, name: str, kind: str, application: str,
         tenant: str | None = None) -> dict:
    argv = [name, "--kind", kind, "--application", application, "--json"]
    assert _run(platform, "add", *argv + (["--tenant", tenant] if tenant else [])) == 0
    return orjson.loads(capsys.readouterr().out)


def _bridge_url(platform, added: dict) -> str:
    return (f"mqtt://{added['username']}:{added['password']}@127.0.0.1:"
            f"{platform.stack.state.mqtt_port}")


def _client(url: str, client_id: str):
    client = mqtt.make_client(url, client_id=client_id)
    seen: dict[object, object] = {}
    client.on_connect = lambda c, u, f, reason, p: seen.setdefault("connack", reason)
    client.on_subscribe = lambda c, u, mid, reasons, p: seen.__setitem__(("sub", mid), reasons)
    client.on_publish = lambda c, u, mid, reason, p: seen.__setitem__(("pub", mid), reason)
    client.on_disconnect = lambda c, u, f, reason, p: seen.setdefault("disconnect", reason)
    mqtt.connect(client)
    client.loop_start()
    wait_for(lambda: "connack" in seen, timeout=10, what="CONNACK")
    return client, seen


def _close(client) -> None:
    client.disconnect()
    client.loop_stop()


def _puback_code(client, seen, topic: str, payload: bytes) -> int:
    mid = client.publish(topic, payload, qos=1).mid
    wait_for(lambda: ("pub", mid) in seen, timeout=10, what="PUBACK")
    return seen[("pub", mid)].value


def _suback_code(client, seen, topic_filter: str) -> int:
    mid = client.subscribe(topic_filter, qos=1)[1]
    wait_for(lambda: ("sub", mid) in seen, timeout=10, what="SUBACK")
    return seen[("sub", mid)][0].value


def _readings(platform, device_id: str) -> int:
    return platform.sql("SELECT count(*) FROM readings WHERE device_id = %s", (device_id,))[0][0]


def _connect_code(url: str, client_id: str) -> int:
    client, seen = _client(url, client_id)
    try:
        return seen["connack"].value
    finally:
        _close(client)


# -- topics and reasons, without the stack ------------------------------------------------
def test_bridge_topics_come_from_the_topic_builders():
    assert topics.tts_bridge_filters("paddy-app", "ttn") == (
        "v3/paddy-app@ttn/devices/+/up", "v3/paddy-app@ttn/devices/+/down/push")
    assert topics.tts_bridge_filters("paddy-app", None) == (
        "v3/paddy-app/devices/+/up", "v3/paddy-app/devices/+/down/push")
    assert topics.chirpstack_bridge_filters(CS_APP) == (
        f"application/{CS_APP}/device/+/event/up", f"application/{CS_APP}/device/+/command/down")
    assert topics.parse("v3/paddy-app@ttn/devices/d1/up").application == "paddy-app@ttn"
    assert topics.parse(f"application/{CS_APP}/device/0004a30b001c0530/event/up"
                        ).application == CS_APP
    reason = ("wrong LoRaWAN application: device 'd1' belongs to The Things Stack application "
              "'a@ttn' (bridge 'b'), this uplink came through The Things Stack application 'c'")
    assert rejects.reason_code(reason) == "wrong-application"


@pytest.mark.parametrize(("name", "kind", "application", "tenant", "says"), [
    ("Bad Name", "tts", "paddy-app", None, "bridge name"),
    ("-lead", "tts", "paddy-app", None, "bridge name"),
    ("x" * 41, "tts", "paddy-app", None, "bridge name"),
    ("b/../#", "tts", "paddy-app", None, "bridge name"),
    ("ok", "lorawan", "paddy-app", None, "bridge kind"),
    ("ok", "tts", "app/#", None, "application id"),
    ("ok", "tts", "+", None, "application id"),
    ("ok", "tts", "ap", None, "application id"),
    ("ok", "tts", "app--x", None, "application id"),
    ("ok", "tts", "App", None, "application id"),
    ("ok", "tts", "a" * 37, None, "application id"),
    ("ok", "tts", "paddy-app", "ttn/#", "tenant id"),
    ("ok", "tts", "paddy-app", "t@x", "tenant id"),
    ("ok", "chirpstack", "paddy-app", None, "UUID"),
    ("ok", "chirpstack", CS_APP + "/#", None, "UUID"),
    ("ok", "chirpstack", "+", None, "UUID"),
    ("ok", "chirpstack", CS_APP, "ttn", "no tenant"),
])
def test_hostile_names_and_applications_are_refused(name, kind, application, tenant, says):
    with pytest.raises(bridges.BridgeError, match=says):
        bridges.check(name=name, kind=kind, application=application, tenant=tenant)


# -- with the real broker, ingest and database ---------------------------------------------
def test_hostile_bridges_are_refused_and_leave_nothing(platform):
    with psycopg.connect(platform.db_url) as conn:
        for name, app in (("hostile", "app/#"), ("Bad#", "paddy-app")):
            with pytest.raises(bridges.BridgeError):
                bridges.add(conn, platform.admin_url(), name=name, kind="tts", application=app)
    assert platform.sql("SELECT count(*) FROM lorawan_bridges WHERE name IN "
                        "('hostile', 'Bad#')") == [(0,)]
    with DynSec(platform.admin_url()) as broker:
        clients = broker.run({"command": "listClients", "verbose": False})[0]["clients"]
    assert not [c for c in clients if c in ("agri-bridge-hostile", "agri-bridge-Bad#")]
    # The database refuses them too, whoever writes.
    for row in (("db-bad", "tts", "app/#", None), ("db-bad", "chirpstack", "x", None),
                ("db/bad", "tts", "paddy-app", None), ("db-bad", "chirpstack", CS_APP, "ttn")):
        with pytest.raises(psycopg.errors.CheckViolation):
            platform.sql("INSERT INTO lorawan_bridges (name, kind, application, tenant, "
                         "password_hash) VALUES (%s, %s, %s, %s, 'x')", row)


def test_a_bridge_publishes_its_applications_uplinks_and_they_are_stored(platform, ingest,
                                                                          capsys):
    tts = _add(platform, capsys, "br-tts", "tts", "paddy-app", "ttn")
    assert tts["username"] == "agri-bridge-br-tts"
    assert tts["publish"] == ["v3/paddy-app@ttn/devices/+/up"]
    assert tts["subscribe"] == ["v3/paddy-app@ttn/devices/+/down/push"]
    cs = _add(platform, capsys, "br-cs", "chirpstack", CS_APP.upper())
    assert cs["application"] == CS_APP
    stored = platform.sql("SELECT password_hash FROM lorawan_bridges WHERE name = 'br-tts'")
    assert stored[0][0].startswith("$7$") and tts["password"] not in stored[0][0]

    own = platform.add_device("br-tts-1", "paddy-water", bridge="br-tts")
    platform.add_device("br-cs-1", "soil", dev_eui="00A1B2C3D4E5F6B1", bridge="br-cs")
    assert platform.sql("SELECT id, bridge FROM devices WHERE id LIKE 'br-%%' ORDER BY id") == [
        ("br-cs-1", "br-cs"), ("br-tts-1", "br-tts")]
    # A device behind a bridge never connects itself: it has no account.
    assert _connect_code(platform.device_url("br-tts-1", own), "br-tts-1") in (134, 135)

    now = time.time()
    client, seen = _client(_bridge_url(platform, tts), tts["username"])
    try:
        assert _puback_code(client, seen, topics.tts_uplink_topic(
            app="paddy-app", tenant="ttn", device_id="br-tts-1"),
            tts_uplink("br-tts-1", now - 10, water_level=0.05)) == 0
        assert _suback_code(client, seen, "v3/paddy-app@ttn/devices/+/down/push") in (0, 1)
    finally:
        _close(client)
    client, seen = _client(_bridge_url(platform, cs), cs["username"])
    try:
        assert _puback_code(client, seen, topics.chirpstack_uplink_topic(
            application_id=CS_APP, dev_eui="00a1b2c3d4e5f6b1"),
            chirpstack_uplink("00a1b2c3d4e5f6b1", now - 20, soil_moisture=0.4)) == 0
        assert _suback_code(client, seen, f"application/{CS_APP}/device/+/command/down") in (0, 1)
    finally:
        _close(client)
    wait_for(lambda: _readings(platform, "br-tts-1") and _readings(platform, "br-cs-1"),
             what="the bridged uplinks stored")

    assert _run(platform, "list", "--json") == 0
    listed = {b["name"]: b for b in orjson.loads(capsys.readouterr().out)}
    assert listed["br-tts"]["devices"] == 1 and listed["br-cs"]["status"] == "active"
    assert "password" not in listed["br-tts"]


def test_a_bridge_cannot_publish_or_subscribe_outside_its_application(platform, ingest,
                                                                      capsys):
    bridge = _add(platform, capsys, "br-fence", "tts", "fence-app", "ttn")
    other = _add(platform, capsys, "br-fence-other", "tts", "other-app", "ttn")
    platform.add_device("br-fence-own", "paddy-water", bridge="br-fence")
    platform.add_device("br-fence-theirs", "paddy-water", bridge="br-fence-other")
    platform.add_device("br-fence-native", "paddy-water")  # talks MQTT itself
    platform.add_device("br-fence-cs", "soil", dev_eui="00a1b2c3d4e5f6c1")
    assert other["username"]
    now = time.time()
    forbidden = [
        topics.tts_uplink_topic(app="other-app", tenant="ttn", device_id="br-fence-theirs"),
        topics.tts_uplink_topic(app="fence-app", tenant=None, device_id="br-fence-own"),
        topics.tts_uplink_topic(app="fence-app", tenant="other", device_id="br-fence-own"),
        topics.tts_uplink_topic(app="other-app", tenant="ttn", device_id="br-fence-native"),
    ]
    client, seen = _client(_bridge_url(platform, bridge), bridge["username"])
    try:
        for topic in forbidden:
            assert _puback_code(client, seen, topic, tts_uplink(
                topic.split("/")[3], now - 5, water_level=0.07)) == 135, topic
        assert _puback_code(client, seen, topics.senml_topic("br-fence-native"), orjson.dumps(
            [{"bt": now - 5, "n": "water_level", "u": "m", "v": 0.07}])) == 135
        assert _puback_code(client, seen, topics.chirpstack_uplink_topic(
            application_id=CS_APP, dev_eui="00a1b2c3d4e5f6c1"),
            chirpstack_uplink("00a1b2c3d4e5f6c1", now - 5, soil_moisture=0.3)) == 135
        for topic_filter in ("#", "+/#", "v3/#", "v3/+/devices/+/up", "$SYS/#",
                             "v3/other-app@ttn/devices/+/down/push",
                             "v3/fence-app@ttn/devices/+/up", "agri/v1/devices/+/commands",
                             "$share/ingest/v3/+/devices/+/up"):
            assert _suback_code(client, seen, topic_filter) == 135, topic_filter
        # Its own uplink, last: once it is stored, anything that got through would be too.
        assert _puback_code(client, seen, topics.tts_uplink_topic(
            app="fence-app", tenant="ttn", device_id="br-fence-own"),
            tts_uplink("br-fence-own", now - 5, water_level=0.07)) == 0
    finally:
        _close(client)
    wait_for(lambda: _readings(platform, "br-fence-own"), what="the bridge's own uplink")
    for device_id in ("br-fence-theirs", "br-fence-native", "br-fence-cs"):
        assert _readings(platform, device_id) == 0, device_id
    assert _readings(platform, "br-fence-own") == 1
    # Its client id is its username: it cannot take another's.
    url = _bridge_url(platform, bridge)
    for client_id in ("agri-ingest-1", "br-fence-native", "agri-bridge-br-fence-other", ""):
        assert _connect_code(url, client_id) == 135, client_id


def test_an_uplink_for_a_device_of_another_application_is_rejected(platform, ingest, capsys):
    a = _add(platform, capsys, "br-app-a", "tts", "app-a", "ttn")
    _add(platform, capsys, "br-app-b", "tts", "app-b", "ttn")
    c = _add(platform, capsys, "br-cs-c", "chirpstack", CS_OTHER)
    platform.add_device("br-dev-b", "paddy-water", bridge="br-app-b")
    platform.add_device("br-dev-cs", "soil", dev_eui="00a1b2c3d4e5f6d1")
    _run(platform, "attach", "br-cs-c", "br-dev-cs")
    # A device that talks MQTT itself: no network server may speak for it.
    platform.add_device("br-dev-free", "paddy-water")
    now = time.time()
    client, seen = _client(_bridge_url(platform, a), a["username"])
    try:
        # Allowed by the broker (its own application's topic), refused by ingest.
        assert _puback_code(client, seen, topics.tts_uplink_topic(
            app="app-a", tenant="ttn", device_id="br-dev-b"),
            tts_uplink("br-dev-b", now - 5, water_level=0.04)) == 0
        assert _puback_code(client, seen, topics.tts_uplink_topic(
            app="app-a", tenant="ttn", device_id="br-dev-free"),
            tts_uplink("br-dev-free", now - 5, water_level=0.04)) == 0
    finally:
        _close(client)
    # The same through other ways in: the ChirpStack device through another
    # ChirpStack application, and through The Things Stack.
    sim = publisher(platform.simulator_url())
    try:
        sim.publish(topics.chirpstack_uplink_topic(application_id=CS_APP,
                                                   dev_eui="00a1b2c3d4e5f6d1"),
                    chirpstack_uplink("00a1b2c3d4e5f6d1", now - 5, soil_moisture=0.3),
                    qos=1).wait_for_publish(10)
        sim.publish(topics.tts_uplink_topic(app="app-b", tenant=None, device_id="br-dev-b"),
                    tts_uplink("br-dev-b", now - 5, water_level=0.04), qos=1).wait_for_publish(10)
    finally:
        sim.loop_stop()
        sim.disconnect()
    assert c["username"]

    def reasons(device_id: str) -> list[str]:
        return [r[0] for r in platform.sql(
            "SELECT reason FROM rejects WHERE device_id = %s ORDER BY id", (device_id,))]

    wait_for(lambda: len(reasons("br-dev-b")) == 2 and reasons("br-dev-cs")
             and reasons("br-dev-free"), what="the rejects")
    first, second = reasons("br-dev-b")
    assert first == (
        "wrong LoRaWAN application: device 'br-dev-b' belongs to The Things Stack application "
        "'app-b@ttn' (bridge 'br-app-b'), this uplink came through The Things Stack "
        "application 'app-a@ttn': attach the device to that application's bridge (agri "
        "bridges attach), or move it to its own application in the network server "
        "(see docs/device-developers.md#wrong-application)")
    assert "came through The Things Stack application 'app-b'" in second
    (cs_reason,) = reasons("br-dev-cs")
    assert cs_reason.startswith(
        f"wrong LoRaWAN application: device 'br-dev-cs' belongs to ChirpStack application "
        f"'{CS_OTHER}' (bridge 'br-cs-c'), this uplink came through ChirpStack application "
        f"'{CS_APP}'")
    assert reasons("br-dev-free") == [
        "wrong LoRaWAN application: device 'br-dev-free' is behind no bridge, so no network "
        "server may send its uplinks (this one came through The Things Stack application "
        "'app-a@ttn'): attach the device to that application's bridge (agri bridges attach) "
        "(see docs/device-developers.md#wrong-application)"]
    assert _readings(platform, "br-dev-b") == 0 and _readings(platform, "br-dev-cs") == 0
    assert _readings(platform, "br-dev-free") == 0


def test_a_revoked_bridge_is_disconnected_and_cannot_reconnect(platform, capsys):
    bridge = _add(platform, capsys, "br-gone", "chirpstack", "1a2b3c4d-0000-4000-8000-00000000a001")
    client, seen = _client(_bridge_url(platform, bridge), bridge["username"])
    try:
        assert seen["connack"].value == 0
        assert _run(platform, "revoke", "br-gone") == 0
        assert "revoked" in capsys.readouterr().out
        wait_for(lambda: "disconnect" in seen, timeout=10, what="the bridge disconnected")
    finally:
        _close(client)
    assert _connect_code(_bridge_url(platform, bridge), bridge["username"]) in (134, 135)
    assert platform.sql("SELECT revoked_at IS NOT NULL FROM lorawan_bridges "
                        "WHERE name = 'br-gone'") == [(True,)]
    assert _run(platform, "revoke", "br-gone") == 0  # twice is harmless
    assert _run(platform, "revoke", "br-never") == 1
    # Its name is not given again, and no device goes behind it.
    with psycopg.connect(platform.db_url) as conn:
        with pytest.raises(bridges.BridgeError, match="exists already"):
            bridges.add(conn, platform.admin_url(), name="br-gone", kind="tts",
                        application="again-app")
        with pytest.raises(bridges.BridgeError, match="revoked"):
            bridges.check_attachable(conn, "br-gone", dev_eui="00a1b2c3d4e5f6e1")


def test_one_active_bridge_per_application(platform, capsys):
    _add(platform, capsys, "br-one", "tts", "one-app", "ttn")
    with psycopg.connect(platform.db_url) as conn:
        with pytest.raises(bridges.BridgeError, match="has an active bridge already"):
            bridges.add(conn, platform.admin_url(), name="br-two", kind="tts",
                        application="one-app", tenant="ttn")
    assert platform.sql("SELECT count(*) FROM lorawan_bridges WHERE name = 'br-two'") == [(0,)]
    _add(platform, capsys, "br-three", "tts", "one-app")  # the topic without tenant differs


def test_attach_checks_the_bridge_and_removes_the_devices_own_account(platform, capsys):
    _add(platform, capsys, "br-att-cs", "chirpstack", "1a2b3c4d-0000-4000-8000-00000000b001")
    _add(platform, capsys, "br-att-tts", "tts", "att-app")
    password = platform.add_device("br-att-1", "paddy-water")
    with psycopg.connect(platform.db_url) as conn:
        with pytest.raises(bridges.BridgeError, match="DevEUI"):
            bridges.attach(conn, platform.admin_url(), name="br-att-cs", device_id="br-att-1")
        with pytest.raises(bridges.BridgeError, match="no bridge"):
            bridges.attach(conn, platform.admin_url(), name="br-nothing", device_id="br-att-1")
        with pytest.raises(bridges.BridgeError, match="no device"):
            bridges.attach(conn, platform.admin_url(), name="br-att-tts", device_id="br-ghost")
        from agri.devices.registry import RegistryError
        with pytest.raises(RegistryError, match="DevEUI"):
            platform.add_device("br-att-2", "soil", bridge="br-att-cs")
    assert platform.sql("SELECT count(*) FROM devices WHERE id = 'br-att-2'") == [(0,)]
    assert _connect_code(platform.device_url("br-att-1", password), "br-att-1") == 0
    assert _run(platform, "attach", "br-att-tts", "br-att-1") == 0
    assert "v3/att-app/devices/+/up" in capsys.readouterr().out
    assert _connect_code(platform.device_url("br-att-1", password), "br-att-1") in (134, 135)
    assert platform.sql("SELECT bridge FROM devices WHERE id = 'br-att-1'") == [("br-att-tts",)]
    # A device behind a bridge gets no password of its own by rotation either.
    rotated = platform.cli("devices", "rotate", "br-att-1", check=False)
    assert rotated.returncode == 2 and "LoRaWAN bridge 'br-att-tts'" in rotated.stderr
    assert _connect_code(platform.device_url("br-att-1", password), "br-att-1") in (134, 135)


def test_many_devices_behind_a_bridge(platform, capsys):
    from agri.devices import provisioning

    _add(platform, capsys, "br-many", "chirpstack", "1a2b3c4d-0000-4000-8000-00000000c001")
    rows = [(f"br-many-{i}", "soil", None, f"00a1b2c3d4e5f7{i:02x}", None) for i in range(3)]
    with psycopg.connect(platform.db_url) as conn:
        assert provisioning.add_many(conn, platform.admin_url(), rows, bridge="br-many") == 3
    assert platform.sql("SELECT count(*) FROM devices WHERE bridge = 'br-many'") == [(3,)]


def test_broker_sync_leaves_bridges_and_their_devices_alone(platform, ingest, capsys):
    bridge = _add(platform, capsys, "br-sync", "tts", "sync-app", "ttn")
    platform.add_device("br-sync-1", "paddy-water", bridge="br-sync")
    with DynSec(platform.admin_url()) as broker:
        before = role_acls(broker.run({"command": "getRole", "rolename": bridge["username"]})[0])
    done = platform.cli("broker", "sync", "--json")  # exit 1 if a device were missing
    report = orjson.loads(done.stdout)
    assert "br-sync-1" not in report["missing_devices"]
    assert not [n for v in report.values() for n in v if "br-sync" in n], report
    with DynSec(platform.admin_url()) as broker:
        client = broker.run({"command": "getClient", "username": bridge["username"]})[0]
        after = role_acls(broker.run({"command": "getRole", "rolename": bridge["username"]})[0])
    assert after == before == {
        ("publishClientSend", "v3/sync-app@ttn/devices/+/up", True),
        ("subscribePattern", "v3/sync-app@ttn/devices/+/down/push", True)}
    assert [r["rolename"] for r in client["client"]["roles"]] == [bridge["username"]]
    assert not client["client"].get("disabled")
    client, seen = _client(_bridge_url(platform, bridge), bridge["username"])
    try:
        assert _puback_code(client, seen, topics.tts_uplink_topic(
            app="sync-app", tenant="ttn", device_id="br-sync-1"),
            tts_uplink("br-sync-1", time.time() - 5, water_level=0.03)) == 0
    finally:
        _close(client)
    wait_for(lambda: _readings(platform, "br-sync-1"), what="the uplink after a sync")


def test_a_broker_rebuilt_from_the_export_keeps_its_bridges(platform, capsys):
    """`agri broker export` writes the active bridges with their stored hashes
    and rights; a revoked bridge and devices behind bridges have no account."""
    import shutil
    import tempfile
    from pathlib import Path


    bridge = _add(platform, capsys, "br-export", "tts", "export-app", "ttn")
    gone = _add(platform, capsys, "br-export-gone", "tts", "export-gone")
    _run(platform, "revoke", "br-export-gone")
    device = platform.add_device("br-export-1", "paddy-water", bridge="br-export")
    tmp_path = Path(tempfile.mkdtemp(prefix="agri-rebuilt-", dir=platform.home.parent))
    tmp_path.chmod(0o755)
    out = tmp_path / "dynamic-security.json"
    platform.cli("broker", "export", "--out", str(out))
    content = orjson.loads(out.read_bytes())
    names = {c["username"] for c in content["clients"]}
    assert bridge["username"] in names
    assert not {gone["username"], "br-export-1", "br-export-1.b"} & names
    broker = rebuilt_broker(tmp_path, out)
    try:
        url = f"mqtt://{bridge['username']}:{bridge['password']}@127.0.0.1:{broker.port}"
        assert _connect_code(url, "someone-else") == 135  # still bound to its client id
        client, seen = _client(url, bridge["username"])
        try:
            assert seen["connack"].value == 0
            assert _puback_code(client, seen, "v3/export-app@ttn/devices/br-export-1/up",
                                b"{}") in (0, 16)  # 16: no subscriber on this broker
            assert _puback_code(client, seen, "v3/other-app@ttn/devices/x/up", b"{}") == 135
            assert _suback_code(client, seen, "#") == 135
        finally:
            _close(client)
        assert _connect_code(f"mqtt://br-export-1:{device}@127.0.0.1:{broker.port}",
                             "br-export-1") in (134, 135)
    finally:
        broker.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_text_output_shows_the_credentials_once_and_the_topics(platform, capsys):
    assert _run(platform, "add", "br-text", "--kind", "tts", "--application", "text-app",
                "--tenant", "ttn") == 0
    out = capsys.readouterr().out
    password = platform.sql("SELECT password_hash FROM lorawan_bridges WHERE name = 'br-text'")
    assert "MQTT username and client id: agri-bridge-br-text" in out
    assert "MQTT password: " in out and "shown once" in out
    assert "may publish uplinks to v3/text-app@ttn/devices/+/up" in out
    assert "may subscribe to downlinks on v3/text-app@ttn/devices/+/down/push" in out
    assert password[0][0] not in out
    assert _run(platform, "list") == 0
    line = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("br-text "))
    assert line.split() == ["br-text", "tts", "text-app@ttn", "active", "0", "devices"]
