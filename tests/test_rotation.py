"""Credential rotation with an overlap, against the real Mosquitto and ingest:
the new credential works at once under the device's other username, the old
one keeps working (as the same device, with the same rights, never both at
once) until its overlap ends, then `agri broker sync` ends it: its session
is disconnected and it is refused from then on. Revoking ends both."""

from __future__ import annotations

import time

import orjson

from agri.devices.topics import senml_topic
from tests.fix_stack import publisher, wait_for
from tests.test_acl import _close, _connect_result


def _url(platform, username: str, password: str) -> str:
    return f"mqtt://{username}:{password}@127.0.0.1:{platform.stack.state.mqtt_port}"


def _reading(client, device_id: str, t: int, v: float):
    return client.publish(senml_topic(device_id), orjson.dumps(
        [{"n": "water_temp", "u": "Cel", "v": v, "t": t}]), qos=1)


def _stored(platform, device_id: str) -> int:
    return platform.sql("SELECT count(*) FROM readings WHERE device_id = %s", (device_id,))[0][0]


def test_the_old_credential_works_until_its_overlap_ends(platform, ingest):
    old_password = platform.add_device("rot-dev")
    platform.add_device("rot-other")
    out = orjson.loads(platform.cli("devices", "rotate", "rot-dev", "--overlap-hours", "0.002",
                                    "--json").stdout)
    assert (out["device_id"], out["username"], out["old_username"]) == \
        ("rot-dev", "rot-dev.b", "rot-dev")
    assert out["password"] != old_password and out["old_until"]
    new_url = _url(platform, out["username"], out["password"])
    old_url = platform.device_url("rot-dev", old_password)

    # During the overlap both log in, as rot-dev and only as rot-dev.
    now = int(time.time())
    old = publisher(old_url, client_id="rot-dev")
    _reading(old, "rot-dev", now - 60, 20.0).wait_for_publish(10)
    wait_for(lambda: _stored(platform, "rot-dev") == 1, what="the old credential's reading")
    _close(old)
    new = publisher(new_url, client_id="rot-dev")
    acks = {}
    new.on_publish = lambda c, u, mid, reason, props: acks.setdefault(mid, reason)
    forged = _reading(new, "rot-other", now - 50, 21.0)
    own = _reading(new, "rot-dev", now - 40, 22.0)
    wait_for(lambda: forged.mid in acks and own.mid in acks, what="PUBACKs")
    assert acks[forged.mid].is_failure and not acks[own.mid].is_failure
    wait_for(lambda: _stored(platform, "rot-dev") == 2, what="the new credential's reading")
    _close(new)
    assert _stored(platform, "rot-other") == 0
    # Another client id is refused with either credential.
    assert _connect_result(new_url, client_id="rot-other").is_failure
    assert not _connect_result(old_url).is_failure

    # A session on the old credential at the end of the overlap is ended by sync.
    live = publisher(old_url, client_id="rot-dev")
    live.reconnect_delay_set(30, 60)
    gone = {}
    live.on_disconnect = lambda c, u, f, reason, p: gone.setdefault("reason", reason)
    time.sleep(max(0.0, 8.0 - (time.time() - now)))
    report = orjson.loads(platform.cli("broker", "sync", "--json", check=False).stdout)
    assert report["ended_credentials"] == ["rot-dev"]
    wait_for(lambda: "reason" in gone, timeout=10, what="the old session to be ended")
    _close(live)
    assert _connect_result(old_url).is_failure
    assert not _connect_result(new_url, client_id="rot-dev").is_failure
    # (sync exits 1 while other tests' devices lack broker accounts: not this one's)
    again = platform.cli("broker", "sync", "--json", check=False)
    assert orjson.loads(again.stdout)["ended_credentials"] == []

    # The next rotation goes back to the device id; revoking ends every credential.
    again = orjson.loads(platform.cli("devices", "rotate", "rot-dev", "--overlap-hours", "1",
                                      "--json").stdout)
    assert (again["username"], again["old_username"]) == ("rot-dev", "rot-dev.b")
    assert not _connect_result(_url(platform, "rot-dev", again["password"])).is_failure
    assert not _connect_result(new_url, client_id="rot-dev").is_failure
    assert "revoked" in platform.cli("devices", "revoke", "rot-dev").stdout
    assert _connect_result(_url(platform, "rot-dev", again["password"])).is_failure
    assert _connect_result(new_url, client_id="rot-dev").is_failure
    assert ingest.poll() is None


def test_a_rotation_without_overlap_stops_the_old_one_at_once(platform):
    old_password = platform.add_device("rot-now")
    out = orjson.loads(platform.cli("devices", "rotate", "rot-now", "--json").stdout)
    assert (out["username"], out["old_until"]) == ("rot-now", None)
    assert _connect_result(platform.device_url("rot-now", old_password)).is_failure
    assert not _connect_result(platform.device_url("rot-now", out["password"])).is_failure


def test_hostile_overlaps_are_refused(platform):
    platform.add_device("rot-bad")
    for hours in ("-1", "721", "nan"):
        result = platform.cli("devices", "rotate", "rot-bad", "--overlap-hours", hours,
                              check=False)
        assert result.returncode == 2, (hours, result.stdout, result.stderr)
    assert platform.sql("SELECT mqtt_username, previous_username FROM devices "
                        "WHERE id = 'rot-bad'") == [(None, None)]


def test_a_rebuilt_broker_keeps_both_credentials_during_the_overlap(platform):
    from agri.devices.broker_accounts import export_file
    from agri.devices.rotation import live_hashes

    old_password = platform.add_device("rot-exp")
    out = orjson.loads(platform.cli("devices", "rotate", "rot-exp", "--overlap-hours", "1",
                                    "--json").stdout)
    import psycopg

    with psycopg.connect(platform.db_url) as conn:
        hashes = live_hashes(conn)
        exported = export_file(conn, admin_user="admin", admin_password="x")
    assert hashes["rot-exp"][0] == hashes["rot-exp.b"][0] == "rot-exp"
    names = {c["username"]: c for c in exported["clients"]}
    assert names["rot-exp"]["clientid"] == names["rot-exp.b"]["clientid"] == "rot-exp"
    assert out["password"] != old_password
