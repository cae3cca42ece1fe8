"""Commands to LoRaWAN devices go out as downlinks through their bridge
(devices/downlinks.py), with the real API, Mosquitto, ingest and database:
the bridge's network server account receives the command on its own
downlink topic in its documented JSON, the device's answer in an uplink is
logged, another bridge never sees it, and a revoked bridge's commands end."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from agri.devices import commands, downlinks, profiles, topics
from tests.fix_stack import wait_for
from tests.test_bridges import (
    _add,
    _bridge_url,
    _client,
    _close,
    _puback_code,
    _readings,
    _run,
    _suback_code,
    chirpstack_uplink,
    tts_uplink,
)

CS_APP = "3c9e2a10-7d4b-4f1e-8a6c-5b2d9e0f1a7c"
CS_EUI = "70b3d57ed005a1c0"
CS_OTHER = "8e1f4a2b-6c3d-4b7e-9f0a-1d2c3b4a5e6f"


class NetworkServer:
    """A bridge's account subscribed to its downlinks, as a network server's
    MQTT integration is; what it received."""

    def __init__(self, platform, added: dict, downlink_filter: str) -> None:
        self.added = added
        self.client, self.seen = _client(_bridge_url(platform, added), added["username"])
        self.received: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

        def on_message(client, userdata, msg) -> None:
            with self.lock:
                self.received.append((msg.topic, orjson.loads(msg.payload)))

        self.client.on_message = on_message
        assert _suback_code(self.client, self.seen, downlink_filter) in (0, 1)

    def uplink(self, topic: str, payload: bytes) -> int:
        return _puback_code(self.client, self.seen, topic, payload)

    def got(self) -> list[tuple[str, dict]]:
        with self.lock:
            return list(self.received)

    def close(self) -> None:
        _close(self.client)


def _command(api, token, device, body) -> dict:
    r = httpx.post(f"{api}/api/v1/devices/{device}/commands", json=body,
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


def _status(platform, command_id: int) -> tuple[str, str | None]:
    return tuple(platform.sql("SELECT status, reason FROM device_commands WHERE id = %s",
                              (command_id,))[0])


# -- the payloads, without the stack ----------------------------------------------------------
def test_the_downlinks_are_what_the_network_servers_document():
    command = commands.command_object(41, "set_gate", {"position": 30},
                                      datetime(2026, 6, 1, 3, 0, tzinfo=UTC))
    topic, payload = downlinks.downlink(downlinks.Route("tts", "paddy-app", "ttn"),
                                        device_id="gate-1", dev_eui=None, port=10,
                                        command_id=41, command=command)
    assert topic == "v3/paddy-app@ttn/devices/gate-1/down/push"
    push = orjson.loads(payload)
    assert push == {"downlinks": [{"f_port": 10, "decoded_payload": command,
                                   "priority": "NORMAL", "confirmed": False,
                                   "correlation_ids": ["agri:command:41"]}]}
    topic, payload = downlinks.downlink(downlinks.Route("chirpstack", CS_APP, None),
                                        device_id="gate-2", dev_eui=CS_EUI, port=12,
                                        command_id=41, command=command)
    assert topic == f"application/{CS_APP}/device/{CS_EUI}/command/down"
    down = orjson.loads(payload)
    assert set(down) == {"id", "devEui", "confirmed", "fPort", "object"}
    assert uuid.UUID(down["id"]) and down["devEui"] == CS_EUI and down["fPort"] == 12
    assert down["object"] == command and down["confirmed"] is False
    # The same command keeps its id when sent again.
    assert orjson.loads(downlinks.downlink(
        downlinks.Route("chirpstack", CS_APP, None), device_id="gate-2", dev_eui=CS_EUI,
        port=12, command_id=41, command=command)[1])["id"] == down["id"]
    with pytest.raises(ValueError, match="DevEUI"):
        downlinks.downlink(downlinks.Route("chirpstack", CS_APP, None), device_id="gate-3",
                           dev_eui=None, port=10, command_id=1, command=command)


def test_the_water_gate_takes_commands_on_the_default_port():
    assert profiles.profile("water-gate").downlink_port == profiles.DOWNLINK_PORT == 10


# -- through the stack ------------------------------------------------------------------------
def test_a_tts_device_gets_its_command_as_a_downlink_and_answers_in_an_uplink(
        platform, ingest, api, capsys):
    tts = _add(platform, capsys, "dl-tts", "tts", "dl-paddy", "ttn")
    other = _add(platform, capsys, "dl-tts-other", "tts", "dl-elsewhere", "ttn")
    platform.add_device("dl-gate-1", "water-gate", bridge="dl-tts")
    server = NetworkServer(platform, tts, tts["subscribe"][0])
    snoop = NetworkServer(platform, other, other["subscribe"][0])
    try:
        sent = _command(api, platform.admin_token, "dl-gate-1",
                        {"name": "set_gate", "args": {"position": 40}, "expires_in_s": 600})
        wait_for(lambda: server.got(), timeout=20, what="the downlink at the network server")
        topic, push = server.got()[0]
        assert topic == "v3/dl-paddy@ttn/devices/dl-gate-1/down/push"
        (down,) = push["downlinks"]
        assert down["f_port"] == 10 and down["priority"] == "NORMAL"
        assert down["decoded_payload"] == {"id": sent["id"], "name": "set_gate",
                                           "args": {"position": 40},
                                           "expires_at": down["decoded_payload"]["expires_at"]}
        assert _status(platform, sent["id"])[0] == "sent"
        # Not resent every few seconds: the device takes it at its next uplink.
        time.sleep(commands.RESEND_S + 3)
        assert len(server.got()) == 1

        now = time.time()
        assert server.uplink(topics.tts_uplink_topic(app="dl-paddy", tenant="ttn",
                                                     device_id="dl-gate-1"),
                             tts_uplink("dl-gate-1", now - 5, gate_position=40,
                                        ack={"id": sent["id"], "status": "done"})) == 0
        wait_for(lambda: _status(platform, sent["id"])[0] == "done", what="the answer logged")
        wait_for(lambda: _readings(platform, "dl-gate-1") == 1, what="the reading stored")
        assert platform.sql("SELECT metric, value FROM readings WHERE device_id = 'dl-gate-1'"
                            ) == [("gate_position", 40.0)]
        assert snoop.got() == []  # another application's network server saw nothing
    finally:
        server.close()
        snoop.close()


def test_a_chirpstack_device_gets_its_command_by_deveui_and_a_bad_answer_is_rejected(
        platform, ingest, api, capsys):
    cs = _add(platform, capsys, "dl-cs", "chirpstack", CS_APP)
    platform.add_device("dl-gate-2", "water-gate", dev_eui=CS_EUI.upper(), bridge="dl-cs")
    server = NetworkServer(platform, cs, cs["subscribe"][0])
    try:
        sent = _command(api, platform.admin_token, "dl-gate-2",
                        {"name": "set_interval", "args": {"seconds": 900}, "expires_in_s": 600})
        wait_for(lambda: server.got(), timeout=20, what="the downlink at the network server")
        topic, down = server.got()[0]
        assert topic == f"application/{CS_APP}/device/{CS_EUI}/command/down"
        assert down["devEui"] == CS_EUI and down["fPort"] == 10
        assert down["object"]["id"] == sent["id"] and down["object"]["args"] == {"seconds": 900}
        assert uuid.UUID(down["id"])

        up = topics.chirpstack_uplink_topic(application_id=CS_APP, dev_eui=CS_EUI)
        now = time.time()
        # An answer that is not one: the reading in the same uplink is kept.
        assert server.uplink(up, chirpstack_uplink(CS_EUI, now - 30, gate_position=10,
                                                   ack={"id": sent["id"], "status": "maybe"})) == 0
        wait_for(lambda: platform.sql(
            "SELECT count(*) FROM rejects WHERE device_id = 'dl-gate-2'")[0][0] == 1,
            what="the bad answer rejected")
        (reason,) = platform.sql("SELECT reason FROM rejects WHERE device_id = 'dl-gate-2'")[0]
        assert "status" in reason and "accepted, rejected, done" in reason
        wait_for(lambda: _readings(platform, "dl-gate-2") == 1, what="the reading kept")
        assert _status(platform, sent["id"])[0] == "sent"
        assert server.uplink(up, chirpstack_uplink(
            CS_EUI, now - 20, ack={"id": sent["id"], "status": "rejected",
                                   "reason": "interval below the battery budget"})) == 0
        wait_for(lambda: _status(platform, sent["id"]) == (
            "rejected", "interval below the battery budget"), what="the refusal logged")
    finally:
        server.close()


def test_a_device_cannot_answer_another_devices_command_through_its_uplinks(
        platform, ingest, api, capsys):
    cs = _add(platform, capsys, "dl-cs-2", "chirpstack", CS_OTHER)
    platform.add_device("dl-gate-3", "water-gate", dev_eui="70b3d57ed005a1c3", bridge="dl-cs-2")
    platform.add_device("dl-gate-4", "water-gate", dev_eui="70b3d57ed005a1c4", bridge="dl-cs-2")
    server = NetworkServer(platform, cs, cs["subscribe"][0])
    try:
        sent = _command(api, platform.admin_token, "dl-gate-3",
                        {"name": "reboot", "expires_in_s": 600})
        wait_for(lambda: server.got(), timeout=20, what="the downlink")
        up = topics.chirpstack_uplink_topic(application_id=CS_OTHER, dev_eui="70b3d57ed005a1c4")
        # Its answer is taken before its reading is stored (ingest/pipeline.py).
        assert server.uplink(up, chirpstack_uplink("70b3d57ed005a1c4", time.time() - 5,
                                                   gate_position=5,
                                                   ack={"id": sent["id"], "status": "done"})) == 0
        wait_for(lambda: _readings(platform, "dl-gate-4") == 1, what="the uplink taken")
        assert _status(platform, sent["id"])[0] == "sent"
    finally:
        server.close()


def test_a_revoked_bridges_commands_end_with_the_reason(platform, ingest, api, capsys):
    tts = _add(platform, capsys, "dl-tts-gone", "tts", "dl-gone", None)
    platform.add_device("dl-gate-5", "water-gate", bridge="dl-tts-gone")
    server = NetworkServer(platform, tts, tts["subscribe"][0])
    try:
        sent = _command(api, platform.admin_token, "dl-gate-5",
                        {"name": "reboot", "expires_in_s": 600})
        wait_for(lambda: server.got(), timeout=20, what="the downlink")
    finally:
        server.close()
    assert _run(platform, "revoke", "dl-tts-gone") == 0
    capsys.readouterr()
    wait_for(lambda: _status(platform, sent["id"]) == (
        "expired", "the device's LoRaWAN bridge was revoked"), what="the command ended")
