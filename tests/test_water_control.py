"""Water control through the real database, Mosquitto, ingest's sender and
API (docs/water-control.md): hold mode's command reaches the gate over MQTT
with its reason logged, a stale sensor holds back, a person's command pauses
the automatic mode until the mode is set again, a deep-water advisory keeps
the drain closed, another farmer sees nothing and hostile bodies store nothing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.clock import TZ
from agri.devices import commands
from agri.devices.topics import commands_topic
from agri.water.service import run_once
from tests.fix_stack import wait_for
from tests.test_device_commands import Device
from tests.test_ingest_e2e import field_at

LON = iter(140.30 + i * 0.01 for i in range(100))


@pytest.fixture(scope="module")
def world(platform, api):
    tokens = {"admin": platform.admin_token}
    with psycopg.connect(platform.db_url) as conn:
        for role, name in (("owner", "wc-owner"), ("other", "wc-other")):
            tokens[role] = add_user(conn, name=name, role="farmer", regions=[]).token
    water_url = platform.stack.state.to_json()["database_urls"]["water"]
    return {"tokens": tokens, "water_url": water_url, "passwords": {}}


def make_field(platform, world, name: str, *, level_m: float, age: timedelta = timedelta(0),
               drain: bool = False, mode: str = "hold", band=(0.02, 0.04, "tillering")):
    """A Hirosaki field of wc-owner with a paddy sensor, a supply gate (and a
    drain), today's band, a level reading ``age`` old and ``mode``."""
    fid = f"wc-{name}"
    with psycopg.connect(platform.db_url) as conn:
        import_fields(conn, parse_features(field_at(fid, "wc-owner", "Hirosaki", next(LON))))
    platform.add_device(f"{fid}-paddy", field_id=fid)
    world["passwords"][f"{fid}-in"] = platform.add_device(
        f"{fid}-in", "water-gate", field_id=fid, owner="wc-owner", gate_role="supply")
    if drain:
        world["passwords"][f"{fid}-out"] = platform.add_device(
            f"{fid}-out", "water-gate", field_id=fid, owner="wc-owner", gate_role="drain")
    now = datetime.now(UTC)
    with psycopg.connect(platform.db_url) as conn:
        conn.execute("INSERT INTO field_water_bands (field_id, day, low_m, high_m, phase, "
                     "computed_for) VALUES (%s, %s, %s, %s, %s, %s)",
                     (fid, now.astimezone(TZ).date(), *band, now.astimezone(TZ).date()))
        conn.execute("INSERT INTO readings VALUES (%s, 'water_level', %s, %s, now())",
                     (f"{fid}-paddy", now - age - timedelta(minutes=1), level_m))
        conn.execute("INSERT INTO water_control (field_id, mode, updated_by) "
                     "VALUES (%s, %s, 'wc-owner')", (fid, mode))
    return fid


def once(world, fields: set[str]) -> list:
    """One pass as the water service's own login; the decisions for ``fields``."""
    with psycopg.connect(world["water_url"], autocommit=True) as conn:
        return [d for d in run_once(conn, now=datetime.now(UTC)) if d.field_id in fields]


def log_rows(platform, fid: str) -> list[tuple]:
    return platform.sql("SELECT action, device_id, command_id, reason, actor FROM "
                        "water_control_log WHERE field_id = %s ORDER BY id", (fid,))


def commands_of(platform, device: str) -> list[tuple]:
    return platform.sql("SELECT id, args, status, requested_by FROM device_commands "
                        "WHERE device_id = %s ORDER BY id", (device,))


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_hold_mode_opens_the_supply_over_mqtt_and_logs_why(platform, ingest, world):
    fid = make_field(platform, world, "hold", level_m=0.005)
    gate = Device(platform, f"{fid}-in", world["passwords"][f"{fid}-in"])
    try:
        assert gate.subscribe(commands_topic(f"{fid}-in")) in (0, 1)
        decisions = once(world, {fid})
        assert [(d.device_id, d.action, d.position, d.code) for d in decisions] == [
            (f"{fid}-in", "open", 100.0, "below-band")]
        [(cid, args, _, by)] = commands_of(platform, f"{fid}-in")
        assert (args, by) == ({"position": 100.0}, "agri-water")
        got = wait_for(lambda: gate.got(cid), timeout=10, what="set_gate at the gate")[0]
        assert (got["name"], got["args"]) == ("set_gate", {"position": 100})
        [(action, device, command_id, reason, actor)] = log_rows(platform, fid)
        assert (action, device, command_id, actor) == ("open", f"{fid}-in", cid, "agri-water")
        assert reason.startswith("below-band: level 0.5 cm")
        gate.answer(cid, "done")
        wait_for(lambda: commands_of(platform, f"{fid}-in")[0][2] == "done", timeout=10,
                 what="the answer recorded")
        assert once(world, {fid}) == []  # opened already: not sent again
        assert len(commands_of(platform, f"{fid}-in")) == 1
    finally:
        gate.close()


def test_a_queued_command_wakes_the_sender_at_once(platform):
    sender = commands.Sender(lambda: psycopg.connect(platform.db_url), lambda *a: True,
                             poll_s=30)
    try:
        assert sender.wait_for_commands(0.05) is False  # listening now, nothing queued
        fid = "wc-f-notify"
        with psycopg.connect(platform.db_url) as conn:
            import_fields(conn, parse_features(field_at(fid, "wc-owner", "Hirosaki",
                                                        next(LON))))
        platform.add_device(f"{fid}-in", "water-gate", field_id=fid)

        def queue() -> None:
            time.sleep(0.2)
            platform.sql("INSERT INTO device_commands (device_id, name, args, requested_by, "
                         "expires_at) VALUES (%s, 'reboot', '{}', 'wc-owner', "
                         "now() + interval '1 minute') RETURNING id", (f"{fid}-in",))

        threading.Thread(target=queue).start()
        started = time.monotonic()
        assert sender.wait_for_commands(20) is True
        assert time.monotonic() - started < 5  # woken by the insert, not the 20 s timeout
    finally:
        sender.close()


def test_a_stale_level_holds_back_once_and_sends_nothing(platform, world):
    fid = make_field(platform, world, "stale", level_m=0.0, age=timedelta(hours=2))
    decisions = once(world, {fid})
    assert [(d.action, d.code) for d in decisions] == [("hold-back", "stale-level")]
    assert once(world, {fid}) == []  # logged once per condition
    assert commands_of(platform, f"{fid}-in") == []
    rows = log_rows(platform, fid)
    assert [(r[0], r[2]) for r in rows] == [("hold-back", None)]
    assert rows[0][3].startswith("stale-level: ")


def test_a_person_moving_a_gate_pauses_hold_until_the_mode_is_set_again(platform, api, world):
    fid = make_field(platform, world, "manual", level_m=0.0)
    owner = _auth(world["tokens"]["owner"])
    moved = httpx.post(f"{api}/api/v1/fields/{fid}/gates/{fid}-in/position",
                       json={"position": 30}, headers=owner, timeout=30)
    assert moved.status_code == 202, moved.text
    assert moved.json()["override"] is True
    [(cid, args, status, by)] = commands_of(platform, f"{fid}-in")
    assert (args, status, by) == ({"position": 30.0}, "queued", "wc-owner")
    control = httpx.get(f"{api}/api/v1/fields/{fid}/water-control", headers=owner).json()
    assert (control["mode"], control["override_by"]) == ("hold", "wc-owner")
    assert control["gates"] == [{"device": f"{fid}-in", "role": "supply"}]
    decisions = once(world, {fid})
    assert [(d.action, d.code) for d in decisions] == [("hold-back", "override")]
    assert once(world, {fid}) == []
    assert len(commands_of(platform, f"{fid}-in")) == 1
    put = httpx.put(f"{api}/api/v1/fields/{fid}/water-control", json={"mode": "hold"},
                    headers=owner)
    assert put.status_code == 200, put.text
    assert put.json()["override_at"] is None
    decisions = once(world, {fid})
    assert [(d.action, d.position) for d in decisions] == [("open", 100.0)]
    log = httpx.get(f"{api}/api/v1/fields/{fid}/water-control/log", params={"limit": 2},
                    headers=owner).json()
    assert [i["code"] for i in log["items"]] == ["below-band", "mode"]
    assert log["next"] is not None
    rest = httpx.get(f"{api}/api/v1/fields/{fid}/water-control/log",
                     params={"cursor": log["next"]}, headers=owner).json()
    assert [(i["action"], i["actor"], i["command"]) for i in rest["items"]] == [
        ("hold-back", "agri-water", None), ("set", "wc-owner", cid)]


def test_the_drain_stays_closed_during_a_deep_water_advisory(platform, world):
    fid = make_field(platform, world, "deep", level_m=0.08, drain=True)
    today = datetime.now(TZ).date()
    with psycopg.connect(platform.db_url) as conn:
        advisory = conn.execute(
            "INSERT INTO advisories (key, kind, severity, status, municipality, field_ids, "
            "reason, valid_from, valid_until, title_ja, body_ja, title_en, body_en, "
            "computed_for) VALUES ('wc-cold', 'cold-damage', 'warning', 'published', "
            "'Hirosaki', %s, 'cold', %s, %s, '深水', '深水に', 'deep water', 'keep deep', %s) "
            "RETURNING id", ([fid], today, today + timedelta(days=3), today)).fetchone()[0]
        conn.execute("INSERT INTO advisory_publications (advisory_id, target, municipalities, "
                     "published_by) VALUES (%s, 'region', '{Hirosaki}', 'admin')", (advisory,))
    decisions = once(world, {fid})
    assert [(d.device_id, d.action, d.code) for d in decisions] == [
        (f"{fid}-in", "close", "near-top"), (f"{fid}-out", "close", "deep-water"),
        (f"{fid}-out", "hold-back", "drain-blocked")]
    assert [c[1] for c in commands_of(platform, f"{fid}-out")] == [{"position": 0.0}]
    assert once(world, {fid}) == []
    platform.sql("UPDATE advisory_publications SET withdrawn_at = now() WHERE advisory_id = %s "
                 "RETURNING id", (advisory,))
    decisions = once(world, {fid})  # the advisory was the reason: now the drain opens
    assert [(d.device_id, d.action, d.code) for d in decisions] == [
        (f"{fid}-out", "open", "above-band")]


def test_another_farmer_gets_404_and_nothing_is_queued_or_changed(platform, api, world):
    fid = make_field(platform, world, "private", level_m=0.03, mode="manual")
    other = _auth(world["tokens"]["other"])
    before = platform.sql("SELECT count(*) FROM device_commands")[0][0]
    calls = [("get", f"/api/v1/fields/{fid}/water-control", None),
             ("put", f"/api/v1/fields/{fid}/water-control", {"mode": "hold"}),
             ("post", f"/api/v1/fields/{fid}/gates/{fid}-in/position", {"position": 100}),
             ("get", f"/api/v1/fields/{fid}/water-control/log", None)]
    for method, path, body in calls:
        r = httpx.request(method.upper(), api + path, json=body, headers=other, timeout=30)
        assert r.status_code == 404, (method, path, r.text)
    assert platform.sql("SELECT count(*) FROM device_commands")[0][0] == before
    assert platform.sql("SELECT mode, override_at FROM water_control WHERE field_id = %s",
                        (fid,)) == [("manual", None)]
    assert log_rows(platform, fid) == []
    # The owner may not move another field's gate through their own field either.
    own = make_field(platform, world, "own", level_m=0.03, mode="manual")
    r = httpx.post(f"{api}/api/v1/fields/{own}/gates/{fid}-in/position",
                   json={"position": 100}, headers=_auth(world["tokens"]["owner"]))
    assert r.status_code == 404
    assert platform.sql("SELECT count(*) FROM device_commands")[0][0] == before


@pytest.mark.parametrize(("path", "body"), [
    ("position", {"position": 101}), ("position", {"position": -1}),
    ("position", {"position": "50"}), ("position", {"position": True}),
    ("position", {"position": 50, "name": "reboot"}), ("position", {}),
    ("position", [50]), ("position", "NaN"),
    ("control", {"mode": "auto"}), ("control", {"mode": "hold", "max_open_h": 0}),
    ("control", {"mode": "hold", "max_open_h": 1e9}),
    ("control", {"mode": "schedule", "schedule": [{"open": "25:00", "close": "07:00"}]}),
    ("control", {"mode": "schedule", "schedule": [{"open": "05:00", "close": "05:00"}]}),
    ("control", {"mode": "schedule", "schedule": [{"open": "05:00", "close": "07:00",
                                                   "x": 1}]}),
    ("control", {"mode": "schedule", "schedule": [{"open": "05:00", "close": "07:00"}] * 9}),
    ("control", {"mode": "hold", "override_at": None}),
])
def test_hostile_bodies_are_422_and_store_nothing(platform, api, world, path, body):
    fid = "wc-private"  # made by the test above: the owner's manual field
    url = (f"{api}/api/v1/fields/{fid}/gates/{fid}-in/position" if path == "position"
           else f"{api}/api/v1/fields/{fid}/water-control")
    before = platform.sql("SELECT (SELECT count(*) FROM device_commands), "
                          "(SELECT count(*) FROM water_control_log), "
                          "(SELECT mode FROM water_control WHERE field_id = %s)", (fid,))
    method = httpx.post if path == "position" else httpx.put
    kw = {"content": body, "headers": {"Content-Type": "application/json"}} \
        if isinstance(body, str) else {"json": body, "headers": {}}
    kw["headers"] |= _auth(world["tokens"]["owner"])
    r = method(url, timeout=30, **kw)
    assert r.status_code == 422, r.text
    assert platform.sql("SELECT (SELECT count(*) FROM device_commands), "
                        "(SELECT count(*) FROM water_control_log), "
                        "(SELECT mode FROM water_control WHERE field_id = %s)",
                        (fid,)) == before
