"""Commands to devices through the real API, Mosquitto, ingest and database
(docs/device-commands.md): a device subscribed with its own credentials gets
its command and answers it, an unanswered one is resent and then expires,
and neither another device nor another user can read, answer or give one."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import psycopg
import pytest

from agri import mqtt
from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.devices import commands
from agri.devices.topics import acks_topic, commands_topic
from tests.fix_stack import wait_for
from tests.test_ingest_e2e import field_at

PEOPLE = {"owner": ("dc-owner", "farmer", []), "heir": ("dc-heir", "farmer", []),
          "other": ("dc-other", "farmer", []), "dev": ("dc-dev", "developer", []),
          "off_h": ("dc-off-h", "officer", ["Hirosaki"]),
          "off_m": ("dc-off-m", "officer", ["Mutsu"]),
          "planner": ("dc-planner", "planner", [])}


@pytest.fixture(scope="module")
def world(platform, api):
    tokens = {"admin": platform.admin_token}
    with psycopg.connect(platform.db_url) as conn:
        for role, (name, kind, regions) in PEOPLE.items():
            tokens[role] = add_user(conn, name=name, role=kind, regions=regions).token
        import_fields(conn, parse_features(field_at("dc-f1", "dc-owner", "Hirosaki", 140.52)))
        conn.execute("INSERT INTO field_shares (field_id, grantee, granted_by) "
                     "VALUES ('dc-f1', 'dc-heir', 'dc-owner')")
    passwords = {
        "dc-gate": platform.add_device("dc-gate", "water-gate", field_id="dc-f1",
                                       owner="dc-owner"),
        "dc-paddy": platform.add_device("dc-paddy", field_id="dc-f1"),
        "dc-proto": platform.add_device("dc-proto", field_id="dc-f1", owner="dc-dev"),
        "dc-intruder": platform.add_device("dc-intruder", "water-gate"),
    }
    return {"tokens": tokens, "passwords": passwords}


def _post(api, token, device, body, **kw) -> httpx.Response:
    return httpx.post(f"{api}/api/v1/devices/{device}/commands", json=body,
                      headers={"Authorization": f"Bearer {token}"}, timeout=30, **kw)


def _log(api, token, device, **params) -> httpx.Response:
    return httpx.get(f"{api}/api/v1/devices/{device}/commands", params=params,
                     headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _status(api, world, command_id: int) -> dict:
    items = _log(api, world["tokens"]["admin"], "dc-gate", limit=200).json()["items"]
    return next(i for i in items if i["id"] == command_id)


def _count(platform, device: str) -> int:
    return platform.sql("SELECT count(*) FROM device_commands WHERE device_id = %s",
                        (device,))[0][0]


class Device:
    """A device connected with its own credentials; what it received on its
    command topic and what the broker told it."""

    def __init__(self, platform, device_id: str, password: str) -> None:
        self.id = device_id
        self.received: list[dict] = []
        self.seen: dict = {}
        self.puback: dict[int, object] = {}
        self.lock = threading.Lock()
        client = mqtt.make_client(platform.device_url(device_id, password), client_id=device_id)
        client.on_connect = lambda c, u, f, reason, p: self.seen.setdefault("connack", reason)
        client.on_subscribe = lambda c, u, mid, reasons, p: self.seen.__setitem__(mid, reasons)
        client.on_message = self._on_message
        client.on_publish = lambda c, u, mid, reason, p: self.puback.__setitem__(mid, reason)
        mqtt.connect(client)
        client.loop_start()
        wait_for(lambda: "connack" in self.seen, timeout=10, what="CONNACK")
        self.client = client

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.received.append({"topic": msg.topic, **orjson.loads(msg.payload)})

    def subscribe(self, topic_filter: str) -> int:
        """The SUBACK's reason code."""
        mid = self.client.subscribe(topic_filter, qos=1)[1]
        return wait_for(lambda: self.seen.get(mid), timeout=10, what="SUBACK")[0].value

    def publish(self, topic: str, body: object) -> int:
        """The PUBACK's reason code."""
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        info = self.client.publish(topic, payload, qos=1)
        return wait_for(lambda: self.puback.get(info.mid), timeout=10, what="PUBACK").value

    def answer(self, command_id: int, status: str, **extra) -> int:
        return self.publish(acks_topic(self.id), {"id": command_id, "status": status, **extra})

    def got(self, command_id: int) -> list[dict]:
        with self.lock:
            return [m for m in self.received if m.get("id") == command_id]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def gate(platform, world):
    device = Device(platform, "dc-gate", world["passwords"]["dc-gate"])
    assert device.subscribe(commands_topic("dc-gate")) in (0, 1)
    yield device
    device.close()


def test_a_command_reaches_the_device_its_answers_are_logged_and_an_unanswered_one_expires(
        platform, api, ingest, world, gate):
    owner = world["tokens"]["owner"]
    before = _count(platform, "dc-gate")
    answered = _post(api, owner, "dc-gate", {"name": "set_gate", "args": {"position": 50},
                                              "expires_in_s": 600})
    assert answered.status_code == 202, answered.text
    a = answered.json()
    assert (a["status"], a["attempts"], a["requested_by"], a["args"]) == (
        "queued", 0, "dc-owner", {"position": 50.0})
    silent = _post(api, owner, "dc-gate", {"name": "reboot", "expires_in_s": 15}).json()
    started = time.monotonic()

    first = wait_for(lambda: gate.got(a["id"]), what="the command at the device")[0]
    assert first == {"topic": commands_topic("dc-gate"), "id": a["id"], "name": "set_gate",
                     "args": {"position": 50}, "expires_at": first["expires_at"]}
    assert first["expires_at"].endswith("Z")
    wait_for(lambda: _status(api, world, a["id"])["status"] == "sent", what="status sent")
    assert gate.answer(a["id"], "accepted") in (0, 16)
    wait_for(lambda: _status(api, world, a["id"])["status"] == "accepted",
             what="status accepted")
    assert _status(api, world, a["id"])["acknowledged_at"] is not None
    assert gate.answer(a["id"], "done") in (0, 16)
    wait_for(lambda: _status(api, world, a["id"])["status"] == "done", what="status done")
    # A redelivered answer changes nothing and is no reject.
    assert gate.answer(a["id"], "accepted") in (0, 16)

    wait_for(lambda: _status(api, world, silent["id"])["status"] == "expired", timeout=40,
             what="the unanswered command to expire")
    assert time.monotonic() - started >= 14
    time.sleep(commands.POLL_S * 2)  # a send after expiry would have come by now
    done, expired = _status(api, world, a["id"]), _status(api, world, silent["id"])
    assert (done["attempts"], done["reason"]) == (1, None)
    assert done["sent_at"] <= done["acknowledged_at"] <= done["done_at"]
    # Sent at once, again after RESEND_S without an answer, then expired.
    assert (expired["attempts"], expired["reason"]) == (2, "no answer before it expired")
    assert len(gate.got(a["id"])) == 1
    assert len(gate.got(silent["id"])) == 2
    assert _count(platform, "dc-gate") == before + 2
    assert platform.sql("SELECT count(*) FROM rejects WHERE device_id = 'dc-gate'") == [(0,)]
    # An answer after expiry does not revive it, and says why.
    assert gate.answer(silent["id"], "done") in (0, 16)
    wait_for(lambda: platform.sql("SELECT reason FROM rejects WHERE device_id = 'dc-gate'"),
             what="the late answer's reject")
    assert _status(api, world, silent["id"])["status"] == "expired"


def test_another_device_can_neither_read_nor_answer_a_devices_commands(
        platform, api, ingest, world, gate):
    intruder = Device(platform, "dc-intruder", world["passwords"]["dc-intruder"])
    try:
        for topic_filter in (commands_topic("dc-gate"), "agri/v1/devices/+/commands",
                             acks_topic("dc-gate"), "agri/v1/devices/dc-gate/#"):
            assert intruder.subscribe(topic_filter) == 135, topic_filter
        assert intruder.subscribe(commands_topic("dc-intruder")) in (0, 1)
        cmd = _post(api, world["tokens"]["owner"], "dc-gate",
                    {"name": "set_target_level", "args": {"level": 0.05}}).json()
        wait_for(lambda: gate.got(cmd["id"]), what="the command at its device")
        # Forged on the victim's acks topic: the broker refuses it.
        assert intruder.publish(acks_topic("dc-gate"), {"id": cmd["id"], "status": "done"}) \
            == 135
        # On its own acks topic: ingest finds no such command of the intruder.
        assert intruder.answer(cmd["id"], "rejected", reason="no") in (0, 16)
        reasons = wait_for(lambda: platform.sql(
            "SELECT reason FROM rejects WHERE device_id = 'dc-intruder'"),
            what="the intruder's reject")
        assert reasons == [(f"device 'dc-intruder' has no command {cmd['id']} "
                            f"(see docs/device-developers.md#command-answer)",)]
        time.sleep(0.5)
        after = _status(api, world, cmd["id"])
        assert (after["status"], after["reason"], after["acknowledged_at"]) == (
            "sent", None, None)
        assert intruder.received == []
        assert gate.answer(cmd["id"], "rejected", reason="gate jammed") in (0, 16)
        wait_for(lambda: _status(api, world, cmd["id"])["status"] == "rejected",
                 what="status rejected")
        assert _status(api, world, cmd["id"])["reason"] == "gate jammed"
    finally:
        intruder.close()


@pytest.mark.parametrize(("payload", "says"), [
    (b"not json", "malformed JSON"),
    (b"[1, 2]", "is a JSON object"),
    (orjson.dumps({"id": "7", "status": "done"}), '"id" is the id of the command'),
    (orjson.dumps({"id": True, "status": "done"}), '"id" is the id of the command'),
    (orjson.dumps({"id": 2**63, "status": "done"}), '"id" is the id of the command'),
    (orjson.dumps({"id": 1, "status": "expired"}), '"status" is one of accepted'),
    (orjson.dumps({"id": 1, "status": "done", "reason": "x" * 201}), "at most 200"),
    (orjson.dumps({"id": 1, "status": "done", "reason": "a\x00b"}), "printable"),
    (orjson.dumps({"id": 1, "status": "done", "sql": "1; DROP TABLE devices"}),
     "no field 'sql'"),
    (b"{" * 100_000, "malformed JSON"),
])
def test_a_malformed_answer_is_a_bounded_reject_with_its_reason(platform, ingest, world,
                                                                 payload, says):
    device = Device(platform, "dc-intruder", world["passwords"]["dc-intruder"])
    marker = platform.sql("SELECT coalesce(max(id), 0) FROM rejects")[0][0]
    try:
        assert device.publish(acks_topic("dc-intruder"), payload) in (0, 16)
        rows = wait_for(lambda: platform.sql(
            "SELECT reason, length(payload), payload_size FROM rejects "
            "WHERE device_id = 'dc-intruder' AND id > %s", (marker,)), what="the reject")
    finally:
        device.close()
    [(reason, kept, size)] = rows
    assert says in reason, reason
    assert size == len(payload) and kept <= 4096
    assert platform.sql("SELECT count(*) FROM device_commands WHERE device_id = 'dc-intruder'"
                        ) == [(0,)]


# role -> expected status of POST and GET for (device): farmers' and developers'
# devices on the Hirosaki field dc-f1 owned by dc-owner, shared with dc-heir.
WHO = {
    "dc-gate": {"owner": (202, 200), "heir": (403, 200), "other": (404, 404),
                "dev": (404, 404), "off_h": (202, 200), "off_m": (404, 404),
                "planner": (404, 404), "admin": (202, 200)},
    # No owner of its own: the field's owner commands it.
    "dc-paddy": {"owner": (202, 200), "heir": (403, 200), "other": (404, 404),
                 "dev": (404, 404), "off_h": (202, 200), "admin": (202, 200)},
    # A developer's prototype on the farmer's field: the farmer sees it, only
    # the developer (and the region's officer, admins) command it.
    "dc-proto": {"owner": (403, 200), "heir": (403, 200), "dev": (202, 200),
                 "off_h": (202, 200), "off_m": (404, 404), "admin": (202, 200)},
}


def test_who_may_command_a_device(platform, api, world):
    before = platform.sql("SELECT count(*) FROM device_commands")[0][0]
    wrong, created = [], 0
    for device, expected in WHO.items():
        for role, (post, get) in expected.items():
            token = world["tokens"][role]
            got = _post(api, token, device, {"name": "reboot", "expires_in_s": 60})
            if got.status_code != post:
                wrong.append(f"POST {device} as {role}: {got.status_code} {got.text}")
            created += got.status_code == 202
            listed = _log(api, token, device)
            if listed.status_code != get:
                wrong.append(f"GET {device} as {role}: {listed.status_code}")
            if get == 404:
                assert listed.json()["detail"] == f"no device {device!r}"
    assert not wrong, "\n".join(wrong)
    assert platform.sql("SELECT count(*) FROM device_commands")[0][0] == before + created
    anon = httpx.post(f"{api}/api/v1/devices/dc-gate/commands", json={"name": "reboot"})
    assert anon.status_code == 401


def test_the_log_pages_newest_first(platform, api, world):
    admin = world["tokens"]["admin"]
    ids = [_post(api, admin, "dc-paddy", {"name": "set_interval", "args": {"seconds": 300},
                                           "expires_in_s": 30}).json()["id"] for _ in range(3)]
    first = _log(api, admin, "dc-paddy", limit=2).json()
    assert [i["id"] for i in first["items"]] == [ids[2], ids[1]]
    assert first["next"] == ids[1]
    second = _log(api, admin, "dc-paddy", limit=2, cursor=first["next"]).json()
    assert second["items"][0]["id"] == ids[0]
    assert second["items"][0]["args"] == {"seconds": 300}


HOSTILE = [
    ({"name": "set_gate", "args": {"position": 50}}, "does not accept the command 'set_gate'"),
    ({"name": "set_interval", "args": {"seconds": 30}}, "outside 60 to 86400 s"),
    ({"name": "set_interval", "args": {"seconds": 300.5}}, "whole number"),
    ({"name": "set_interval", "args": {}}, "needs seconds"),
    ({"name": "set_interval", "args": {"seconds": 300, "x": 1}}, "takes no argument 'x'"),
    ({"name": "reboot", "args": {"now": 1}}, "takes no argument 'now'"),
    ({"name": "set_interval", "args": {"seconds": "300"}}, None),
    ({"name": "set_interval", "args": {"seconds": True}}, None),
    ({"name": "set_interval", "args": {"seconds": [300]}}, None),
    ({"name": "set_interval", "args": [300]}, None),
    ({"name": "reboot", "expires_in_s": 0}, None),
    ({"name": "reboot", "expires_in_s": 10**9}, None),
    ({"name": "reboot", "expires_in_s": 4}, None),
    ({"name": "reboot", "extra": 1}, None),
    ({"name": "Reboot'; DROP TABLE devices; --"}, None),
    ({"name": "x" * 10_000}, None),
    ({"name": ""}, None),
    ({}, None),
    ({"name": "set_interval", "args": {f"a{i}": 1 for i in range(5000)}}, None),
]


@pytest.mark.parametrize(("body", "says"), HOSTILE)
def test_hostile_bodies_are_422_and_store_nothing(platform, api, world, body, says):
    before = platform.sql("SELECT count(*) FROM device_commands")[0][0]
    got = _post(api, world["tokens"]["owner"], "dc-paddy", body)
    assert got.status_code == 422, got.text
    if says:
        assert says in got.json()["detail"], got.text
    assert platform.sql("SELECT count(*) FROM device_commands")[0][0] == before


@pytest.mark.parametrize("raw", [b'{"name":"set_interval","args":{"seconds":NaN}}',
                                 b'{"name":"set_interval","args":{"seconds":Infinity}}',
                                 b'{"name":"set_interval","args":{"seconds":1e999}}',
                                 b'{"name":"reboot"', b"\xff\xfe", b"null"])
def test_unreadable_bodies_are_422(platform, api, world, raw):
    before = platform.sql("SELECT count(*) FROM device_commands")[0][0]
    got = httpx.post(f"{api}/api/v1/devices/dc-paddy/commands", content=raw,
                     headers={"Authorization": f"Bearer {world['tokens']['owner']}",
                              "Content-Type": "application/json"})
    assert got.status_code == 422, got.text
    assert platform.sql("SELECT count(*) FROM device_commands")[0][0] == before


def test_unknown_and_revoked_devices(platform, api, ingest, world):
    admin = world["tokens"]["admin"]
    for device in ("dc-nobody", "a" * 65, "bad%20id"):
        got = _post(api, admin, device, {"name": "reboot"})
        assert got.status_code == 404, (device, got.text)
        assert _log(api, admin, device).status_code == 404
    platform.add_device("dc-gone", field_id="dc-f1")
    queued = _post(api, admin, "dc-gone", {"name": "reboot", "expires_in_s": 600})
    assert queued.status_code == 202
    platform.cli("devices", "revoke", "dc-gone")
    got = _post(api, admin, "dc-gone", {"name": "reboot"})
    assert got.status_code == 409 and "revoked" in got.json()["detail"]
    wait_for(lambda: platform.sql(
        "SELECT status, reason FROM device_commands WHERE device_id = 'dc-gone'") == [
        ("expired", "the device was revoked")], what="the revoked device's command to expire")


def test_a_device_may_have_only_so_many_commands_waiting(platform, api, world):
    admin = world["tokens"]["admin"]
    waiting = platform.sql("SELECT count(*) FROM device_commands WHERE device_id = 'dc-proto' "
                           "AND status IN ('queued', 'sent')")[0][0]
    for _ in range(commands.MAX_OPEN - waiting):
        assert _post(api, admin, "dc-proto", {"name": "reboot"}).status_code == 202
    got = _post(api, admin, "dc-proto", {"name": "reboot"})
    assert got.status_code == 409 and "unanswered" in got.json()["detail"]
    assert _count(platform, "dc-proto") >= commands.MAX_OPEN


@pytest.mark.parametrize(("args", "says"), [
    ({"position": 150}, "set_gate: position = 150 is outside 0 to 100 %"),
    ({"position": -0.1}, "outside 0 to 100 %"), ({}, "set_gate needs position")])
def test_a_gate_position_outside_its_range_is_422(platform, api, world, args, says):
    before = _count(platform, "dc-gate")
    got = _post(api, world["tokens"]["owner"], "dc-gate", {"name": "set_gate", "args": args})
    assert got.status_code == 422 and says in got.json()["detail"], got.text
    assert _count(platform, "dc-gate") == before
