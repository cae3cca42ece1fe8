"""The broker lets a device publish only under its own id, and refuses
revoked devices and wrong passwords at CONNECT."""

from __future__ import annotations

import orjson
import pytest

from agri import mqtt
from agri.devices.topics import senml_topic
from tests.fix_stack import publisher, wait_for


def _connect_result(url: str) -> object:
    client = mqtt.make_client(url)
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
