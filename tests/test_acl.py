"""The broker lets a device publish only under its own id, and refuses
revoked devices and wrong passwords at CONNECT."""

from __future__ import annotations

import orjson
import pytest

from agri import mqtt
from agri.devices.topics import senml_topic
from tests.fix_stack import publisher, wait_for


def _connect_result(url: str, client_id: str | None = None) -> object:
    client = mqtt.make_client(url, client_id=client_id or mqtt.parse_url(url).username or "")
    outcome = {}
    client.on_connect = lambda c, u, flags, reason, props: outcome.setdefault("rc", reason)
    mqtt.connect(client, blocking=True)
    client.loop_start()
    try:
        return wait_for(lambda: outcome.get("rc"), timeout=10, what="CONNACK")
    finally:
        client.loop_stop()
        client.disconnect()


def test_device_cannot_publish_as_another(platform, ingest):
    alice = platform.add_device("acl-alice")
    platform.add_device("acl-bob")
    client = publisher(platform.device_url("acl-alice", alice))
    acks = {}
    client.on_publish = lambda c, u, mid, reason, props: acks.setdefault(mid, reason)
    forged = client.publish(senml_topic("acl-bob"), orjson.dumps([{"n": "water_temp", "v": 20}]),
                            qos=1)
    own = client.publish(senml_topic("acl-alice"),
                         orjson.dumps([{"n": "water_temp", "v": 21}]), qos=1)
    wait_for(lambda: forged.mid in acks and own.mid in acks, what="PUBACKs")
    # MQTT 5: the broker answers the forged publish with "Not authorized".
    assert acks[forged.mid].value == 135
    assert acks[own.mid].value == 0
    wait_for(lambda: platform.sql("SELECT 1 FROM readings WHERE device_id = 'acl-alice'"),
             what="alice's own reading")
    assert platform.sql("SELECT count(*) FROM readings WHERE device_id = 'acl-bob'") == [(0,)]
    client.loop_stop()
    client.disconnect()


def test_revoked_device_and_wrong_password_are_refused_at_connect(platform):
    password = platform.add_device("acl-carol")
    assert not _connect_result(platform.device_url("acl-carol", password)).is_failure
    assert _connect_result(platform.device_url("acl-carol", "wrong")).is_failure
    done = platform.cli("devices", "revoke", "acl-carol")
    assert "revoked" in done.stdout
    reason = _connect_result(platform.device_url("acl-carol", password))
    assert reason.is_failure and reason.value in (134, 135)  # bad credentials / not authorized


@pytest.mark.parametrize("device_id", ["bad id", "x" * 65, "semi;colon"])
def test_device_ids_outside_the_contract_are_refused(platform, device_id):
    result = platform.cli("devices", "add", "--id", device_id, "--profile", "soil",
                          check=False)
    assert result.returncode == 2 and "must match" in result.stderr


# -- what one device with valid credentials must not be able to do ------------------------
def _client(platform, device_id: str, password: str, *, client_id: str | None = None,
            clean_start: bool = True, session_expiry_s: int | None = None):
    """A device's client and what the broker told it (connect, suback, disconnect)."""
    client = mqtt.make_client(platform.device_url(device_id, password),
                              client_id=device_id if client_id is None else client_id)
    seen: dict[str, object] = {}
    client.on_connect = lambda c, u, f, reason, p: seen.setdefault("connack", reason)
    client.on_subscribe = lambda c, u, mid, reasons, p: seen.__setitem__(mid, reasons)
    client.on_disconnect = lambda c, u, f, reason, p: seen.setdefault("disconnect", reason)
    mqtt.connect(client, clean_start=clean_start,
                 properties=mqtt.connect_properties(session_expiry_s=session_expiry_s))
    client.loop_start()
    wait_for(lambda: "connack" in seen, timeout=10, what="CONNACK")
    return client, seen


def _close(client) -> None:
    client.disconnect()
    client.loop_stop()


HOSTILE_FILTERS = ["#", "$SYS/#", "agri/v1/devices/+/+", "agri/v1/devices/acl-victim/commands",
                   "$share/ingest/agri/v1/devices/+/+", "$share/x/#", "+/#"]


def test_a_device_may_subscribe_only_to_its_own_command_topic(platform):
    password = platform.add_device("acl-sub")
    platform.add_device("acl-victim")
    client, seen = _client(platform, "acl-sub", password)
    try:
        for topic_filter in HOSTILE_FILTERS:
            mid = client.subscribe(topic_filter, qos=1)[1]
            reasons = wait_for(lambda m=mid: seen.get(m), timeout=10, what="SUBACK")
            assert reasons[0].value == 135, (topic_filter, reasons)  # refused at subscribe time
        mid = client.subscribe("agri/v1/devices/acl-sub/commands", qos=1)[1]
        assert not wait_for(lambda: seen.get(mid), timeout=10, what="SUBACK")[0].is_failure
    finally:
        _close(client)


def test_a_device_cannot_take_another_clients_id(platform, ingest):
    password = platform.add_device("acl-thief")
    for client_id in ("agri-ingest-1", "acl-victim", "", "acl-thief-2"):
        client = mqtt.make_client(platform.device_url("acl-thief", password), client_id=client_id)
        outcome = {}
        client.on_connect = lambda c, u, f, reason, p, o=outcome: o.setdefault("rc", reason)
        mqtt.connect(client)
        client.loop_start()
        try:
            assert wait_for(lambda o=outcome: o.get("rc"), timeout=10,
                            what="CONNACK").value == 135, client_id
        finally:
            _close(client)
    assert ingest.poll() is None


def test_one_device_attacking_ingest_takes_no_reading_away(platform, ingest):
    """While a device holds persistent and live sessions asking for ingest's
    shared filters and loops connecting with ingest's client id, every reading
    that another device publishes is stored."""
    import threading
    import time

    attacker = platform.add_device("acl-attacker")
    honest = platform.add_device("acl-honest")
    stop = threading.Event()
    # A persistent session that asks for ingest's filters, then goes away.
    parked, seen = _client(platform, "acl-attacker", attacker, clean_start=False,
                           session_expiry_s=3600)
    for topic_filter in ("$share/ingest/agri/v1/devices/+/+", "$share/ingest/#"):
        mid = parked.subscribe(topic_filter, qos=1)[1]
        assert wait_for(lambda m=mid: seen.get(m), timeout=10, what="SUBACK")[0].value == 135
    _close(parked)
    live, seen = _client(platform, "acl-attacker", attacker)
    live.subscribe("$share/ingest/agri/v1/devices/+/+", qos=1)
    kicks = {"tries": 0, "accepted": 0}

    def take_over() -> None:
        while not stop.is_set():
            client = mqtt.make_client(platform.device_url("acl-attacker", attacker),
                                      client_id="agri-ingest-1")
            got = {}
            client.on_connect = lambda c, u, f, reason, p, g=got: g.setdefault("rc", reason)
            try:
                mqtt.connect(client)
                client.loop_start()
                deadline = time.monotonic() + 5
                while "rc" not in got and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                client.disconnect()
                client.loop_stop()
            kicks["tries"] += 1
            kicks["accepted"] += int("rc" in got and not got["rc"].is_failure)

    thief = threading.Thread(target=take_over, daemon=True)
    thief.start()
    pub = publisher(platform.device_url("acl-honest", honest))
    base = 1_700_000_000 - 1_700_000_000 % 60 + int(time.time()) // 60 * 0
    start = int(time.time()) - 3600
    sent = []
    try:
        for i in range(300):
            t = start + i
            sent.append(pub.publish(senml_topic("acl-honest"), orjson.dumps(
                [{"n": "water_temp", "u": "Cel", "v": 20 + i / 1000, "t": t}]), qos=1))
        for info in sent:
            info.wait_for_publish(30)
        assert all(info.rc == 0 for info in sent)
        wait_for(lambda: platform.sql(
            "SELECT count(*) FROM readings WHERE device_id = 'acl-honest'")[0][0] >= 300,
            what="every reading of the honest device")
    finally:
        stop.set()
        thief.join(15)
        _close(pub)
        _close(live)
    del base
    assert platform.sql("SELECT count(*) FROM readings WHERE device_id = 'acl-honest'") == [(300,)]
    assert kicks["tries"] > 0 and kicks["accepted"] == 0
    assert ingest.poll() is None


def test_only_drones_publish_flight_records(platform):
    password = platform.add_device("acl-paddy-drone")
    client = publisher(platform.device_url("acl-paddy-drone", password))
    acks = {}
    client.on_publish = lambda c, u, mid, reason, props: acks.setdefault(mid, reason)
    info = client.publish("agri/v1/drones/acl-paddy-drone/flights", b"{}", qos=1)
    wait_for(lambda: info.mid in acks, what="PUBACK")
    assert acks[info.mid].value == 135
    _close(client)


def test_revoke_disconnects_a_live_device_and_rotate_replaces_its_password(platform):
    password = platform.add_device("acl-rotor")
    client, seen = _client(platform, "acl-rotor", password)
    client.reconnect_delay_set(30, 60)  # stay down once the broker ends the session
    out = orjson.loads(platform.cli("devices", "rotate", "acl-rotor", "--json").stdout)
    assert out["device_id"] == "acl-rotor" and out["password"] != password
    wait_for(lambda: "disconnect" in seen, timeout=10, what="the old session to be ended")
    _close(client)
    assert _connect_result(platform.device_url("acl-rotor", password)).is_failure
    new_client, seen = _client(platform, "acl-rotor", out["password"])
    assert not seen["connack"].is_failure
    new_client.reconnect_delay_set(30, 60)
    assert "revoked" in platform.cli("devices", "revoke", "acl-rotor").stdout
    wait_for(lambda: "disconnect" in seen, timeout=10, what="the revoked device's disconnect")
    _close(new_client)
    assert _connect_result(platform.device_url("acl-rotor", out["password"])).is_failure
    assert platform.cli("devices", "rotate", "acl-rotor", check=False).returncode == 2


@pytest.mark.parametrize("device_id", ["agri-ingest", "agri-simulator", "agri-admin", "agri-x"])
def test_service_account_names_are_reserved(platform, device_id):
    result = platform.cli("devices", "add", "--id", device_id, "--profile", "soil", check=False)
    assert result.returncode == 2 and "kept for the platform" in result.stderr


def test_broker_sync_leaves_connected_service_clients_alone(platform, ingest):
    """A sync that changes nothing must not end ingest's session (setting a
    password does)."""
    log = platform.home / "ingest-1.log"
    before = log.read_text().count("disconnected from the broker")
    for _ in range(2):
        assert orjson.loads(platform.cli("broker", "sync", "--json").stdout)[
            "updated_services"] == []
    assert log.read_text().count("disconnected from the broker") == before
    assert ingest.poll() is None


def test_broker_sync_repairs_drift_and_says_what_it_changed(platform):
    from agri.devices.dynsec import DynSec, acl

    password = platform.add_device("acl-drift")
    platform.add_device("acl-gone")
    with DynSec(platform.admin_url()) as broker:
        # Drift: a device's role widened, its client id binding removed, a
        # revoked device put back by hand, ingest's role emptied.
        broker.run({"command": "addRoleACL", "rolename": "agri-device-acl-drift",
                    **acl("subscribePattern", "#")},
                   {"command": "setClientId", "username": "acl-drift"},
                   {"command": "removeRoleACL", "rolename": "agri-ingest",
                    "acltype": "subscribePattern", "topic": "$SYS/#"})
        broker.run({"command": "deleteClient", "username": "acl-gone"})
    platform.sql("UPDATE devices SET revoked_at = now() WHERE id = 'acl-drift' RETURNING id")
    with DynSec(platform.admin_url()) as broker:
        broker.run({"command": "getClient", "username": "acl-drift"})
    result = platform.cli("broker", "sync", check=False)
    assert "device acl-drift: removed from the broker" in result.stdout, result.stderr
    assert "role agri-ingest: rights restored" in result.stdout
    assert "device acl-gone: registered but has no broker account" in result.stdout
    assert "agri devices rotate acl-gone" in result.stdout and result.returncode == 1
    assert _connect_result(platform.device_url("acl-drift", password)).is_failure
    # Rotating the missing device gives it an account again; then all agree.
    fresh = orjson.loads(platform.cli("devices", "rotate", "acl-gone", "--json").stdout)
    assert not _connect_result(platform.device_url("acl-gone", fresh["password"])).is_failure
    again = platform.cli("broker", "sync", "--json")
    assert orjson.loads(again.stdout) == {"created_services": [], "updated_services": [],
                                          "updated_roles": [],
                                          "fixed_devices": [], "removed_devices": [],
                                          "ended_credentials": [], "missing_devices": []}


def test_a_broker_rebuilt_from_the_export_keeps_every_device(platform):
    """`agri broker export` seeds a broker built from nothing: devices keep
    their passwords, client ids and rights; revoked ones stay out."""
    import shutil
    import tempfile
    from pathlib import Path


    tmp_path = Path(tempfile.mkdtemp(prefix="agri-rebuilt-", dir=platform.home.parent))
    tmp_path.chmod(0o755)
    keep = platform.add_device("acl-rebuilt")
    gone = platform.add_device("acl-rebuilt-revoked")
    platform.cli("devices", "revoke", "acl-rebuilt-revoked")
    out = tmp_path / "dynamic-security.json"
    assert "devices with their stored password hashes" in platform.cli(
        "broker", "export", "--out", str(out)).stdout
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    broker = rebuilt_broker(tmp_path, out)
    try:
        url = f"mqtt://acl-rebuilt:{keep}@127.0.0.1:{broker.port}"
        assert not _connect_result(url).is_failure
        assert _connect_result(url, client_id="agri-ingest-1").value == 135
        assert _connect_result(
            f"mqtt://acl-rebuilt-revoked:{gone}@127.0.0.1:{broker.port}").is_failure
        ingest_url = platform.stack.mqtt_url("ingest").rsplit(":", 1)[0] + f":{broker.port}"
        assert not _connect_result(ingest_url, client_id="agri-ingest-9").is_failure
        client = mqtt.make_client(url, client_id="acl-rebuilt")
        seen = {}
        client.on_subscribe = lambda c, u, mid, reasons, p: seen.__setitem__(mid, reasons)
        mqtt.connect(client)
        client.loop_start()
        mid = client.subscribe("#", qos=1)[1]
        assert wait_for(lambda: seen.get(mid), timeout=10, what="SUBACK")[0].value == 135
        _close(client)
    finally:
        broker.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_device_cannot_take_the_name_of_a_broker_account(platform):
    """The operator's admin (or a bridge) may have any name: registering a
    device under it is refused and the account keeps working."""
    from agri.devices.dynsec import DynSec

    with DynSec(platform.admin_url()) as broker:
        broker.run({"command": "createClient", "username": "acl-bridge", "password": "pw-bridge"})
    for name in ("acl-bridge", "agri-admin"):
        result = platform.cli("devices", "add", "--id", name, "--profile", "soil", check=False)
        assert result.returncode == 2, result
        assert "not a device's" in result.stderr or "kept for the platform" in result.stderr
    assert platform.sql("SELECT count(*) FROM devices WHERE id = 'acl-bridge'") == [(0,)]
    assert not _connect_result(
        f"mqtt://acl-bridge:pw-bridge@127.0.0.1:{platform.stack.state.mqtt_port}").is_failure
    with DynSec(platform.admin_url()) as broker:  # the admin still manages the broker
        broker.run({"command": "deleteClient", "username": "acl-bridge"})


def rebuilt_broker(tmp_path, export_file):
    """A new Mosquitto started on ``export_file`` (agri broker export), as an
    operator rebuilds a broker from nothing; the caller stops it."""
    import shutil

    from agri.deploy import servers

    base = tmp_path / "rebuilt"
    base.mkdir()
    base.chmod(0o755)
    broker = servers.Mosquitto(base / "mosquitto", servers.free_port(), base / "run")
    (base / "mosquitto").mkdir()
    servers.give_to_service(base / "mosquitto", mode=0o700)
    shutil.copy(export_file, broker.dynsec_file)
    servers.give_to_service(broker.dynsec_file, mode=0o600)
    broker.prepare(admin_user="agri-admin", admin_password="unused: the file exists")
    broker.start()
    return broker
