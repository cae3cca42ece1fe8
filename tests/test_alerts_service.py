"""The alerts service end to end: readings arrive, the service opens the
alert, its email reaches a real SMTP server once while the condition lasts
and a follow-up when it clears; the owner, a user the field is shared with
and an officer with preferences are told, another farmer never; quiet
hours hold a warning and let an urgent one through; every delivery's
status is recorded (sent, failed, skipped); the service survives a bad row
and an SMTP server that is away."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from agri.alerts import deliver, service
from agri.alerts.rules import RULES, key
from agri.alerts.store import Finding, clear_alert, open_alert
from agri.clock import TZ
from agri.settings import Settings
from tests.fix_smtp import smtp_server  # noqa: F401 - fixture
from tests.fix_stack import wait_for
from tests.test_alerts_rules import add_device, add_field, add_user, alerts_url, ex, write


@contextmanager
def running(platform, **settings) -> Iterator[threading.Thread]:
    stop = threading.Event()
    s = Settings(home=platform.home, public_url="https://agri.example", **settings)
    t = threading.Thread(target=service.serve, args=(s, stop),
                         kwargs={"poll_s": 0.2, "schedule_s": 1.0}, daemon=True)
    t.start()
    try:
        yield t
    finally:
        stop.set()
        t.join(10)
        assert not t.is_alive()


def prefs(platform, user: str, *, email: str | None, quiet: tuple | None = None,
          rules: list | None = None) -> None:
    ex(platform, "INSERT INTO alert_preferences (user_name, email, email_on, rules, "
       "quiet_start, quiet_end) VALUES (%s, %s, true, %s, %s, %s)",
       (user, email, rules, *(quiet or (None, None))))


def deliveries(platform, device: str) -> list[tuple]:
    return platform.sql(
        "SELECT d.user_name, d.event, d.status, d.error, a.rule FROM alert_deliveries d "
        "JOIN alerts a ON a.id = d.alert_id WHERE a.device_id = %s ORDER BY d.id", (device,))


def to(messages, address: str) -> list:
    return [m for m in messages if address in m["To"]]


@pytest.fixture
def world(platform):
    uid = secrets.token_hex(3)
    owner = add_user(platform, f"as-own-{uid}")
    sharee = add_user(platform, f"as-sh-{uid}")
    other = add_user(platform, f"as-oth-{uid}")
    officer = add_user(platform, f"as-off-{uid}", "officer", (f"town-{uid}",))
    far = add_user(platform, f"as-far-{uid}", "officer", (f"elsewhere-{uid}",))
    field = add_field(platform, f"asf-{uid}", owner, municipality=f"town-{uid}")
    other_field = add_field(platform, f"asf-o-{uid}", other)
    ex(platform, "INSERT INTO field_shares (field_id, grantee, granted_by) VALUES (%s, %s, %s)",
       (field, sharee, owner))
    for user in (owner, sharee, other, officer, far):
        prefs(platform, user, email=f"{user}@example.jp")
    return {"uid": uid, "owner": owner, "sharee": sharee, "other": other, "officer": officer,
            "far": far, "field": field, "other_field": other_field,
            "dev": add_device(platform, f"asd-{uid}", field),
            "other_dev": add_device(platform, f"asd-o-{uid}", other_field)}


def test_opened_once_then_cleared_to_the_right_people(platform, smtp_server, world):  # noqa: F811
    w = world
    with running(platform, smtp_url=smtp_server.url):
        t = datetime.now(UTC)
        write(platform, w["dev"], "water_level", [(t, -0.02)])
        smtp_server.wait_for(3, timeout=20)
        # Lasting: more readings, still one message each.
        write(platform, w["dev"], "water_level", [(t + timedelta(seconds=1), -0.03)])
        write(platform, w["dev"], "water_level", [(t + timedelta(seconds=2), 0.045)])
        smtp_server.wait_for(6, timeout=20)
    messages = smtp_server.messages()
    for user in (w["owner"], w["sharee"], w["officer"]):
        got = to(messages, f"{user}@example.jp")
        assert len(got) == 2, (user, [m["Subject"] for m in got])
    for user in (w["other"], w["far"]):
        assert to(messages, f"{user}@example.jp") == []
    got = to(messages, f"{w['owner']}@example.jp")[0]
    assert f"https://agri.example/fields/{w['field']}" in got.get_content()
    rows = deliveries(platform, w["dev"])
    assert sorted((r[1], r[2]) for r in rows) == [("cleared", "sent")] * 3 + \
        [("opened", "sent")] * 3
    assert {r[0] for r in rows} == {w["owner"], w["sharee"], w["officer"]}


def test_quiet_hours_hold_a_warning_not_an_urgent_one(platform, smtp_server, world):  # noqa: F811
    w = world
    quiet = add_user(platform, f"as-q-{w['uid']}")
    field = add_field(platform, f"asf-q-{w['uid']}", quiet)
    dev = add_device(platform, f"asd-q-{w['uid']}", field)
    local = datetime.now(TZ)
    start, end = (local - timedelta(hours=1)).time(), (local + timedelta(hours=1)).time()
    prefs(platform, quiet, email=f"{quiet}@example.jp", quiet=(start, end))
    with running(platform, smtp_url=smtp_server.url):
        t = datetime.now(UTC)
        write(platform, dev, "battery", [(t, 10.0)])  # warning
        write(platform, dev, "water_level", [(t, -0.02)])  # urgent
        smtp_server.wait_for(1, timeout=20)
        wait_for(lambda: len(deliveries(platform, dev)) == 2, what="both deliveries")
    rows = {r[4]: r for r in deliveries(platform, dev)}
    assert rows["water-gone"][2] == "sent"
    assert rows["battery-low"][2] == "held"
    not_before = platform.sql("SELECT d.not_before FROM alert_deliveries d JOIN alerts a "
                              "ON a.id = d.alert_id WHERE a.device_id = %s AND "
                              "a.rule = 'battery-low'", (dev,))[0][0]
    assert not_before.astimezone(TZ).time().replace(second=0, microsecond=0) == \
        end.replace(second=0, microsecond=0)
    assert len(to(smtp_server.messages(), f"{quiet}@example.jp")) == 1


def test_skipped_without_address_failed_when_refused(platform, smtp_server, world):  # noqa: F811
    w = world
    noaddr = add_user(platform, f"as-na-{w['uid']}")
    field = add_field(platform, f"asf-na-{w['uid']}", noaddr)
    dev = add_device(platform, f"asd-na-{w['uid']}", field)
    prefs(platform, noaddr, email=None)
    refused = add_user(platform, f"as-rf-{w['uid']}")
    field2 = add_field(platform, f"asf-rf-{w['uid']}", refused)
    dev2 = add_device(platform, f"asd-rf-{w['uid']}", field2)
    prefs(platform, refused, email=smtp_server.refused_address)
    with running(platform, smtp_url=smtp_server.url):
        t = datetime.now(UTC)
        write(platform, dev, "water_level", [(t, -0.02)])
        write(platform, dev2, "water_level", [(t, -0.02)])
        wait_for(lambda: [r[2] for r in deliveries(platform, dev2)] == ["failed"],
                 timeout=20, what="the refused delivery to be failed")
        wait_for(lambda: [r[2] for r in deliveries(platform, dev)] == ["skipped"],
                 timeout=20, what="the delivery without address to be skipped")
    assert deliveries(platform, dev2)[0][3]  # the server's reason


def test_survives_smtp_down_and_a_bad_row(platform, world):
    w = world
    from agri.deploy.servers import free_port

    try:
        with running(platform, smtp_url=f"smtp://127.0.0.1:{free_port()}") as thread:
            t = datetime.now(UTC)
            # A reading the rules cannot place (NaN level) and one they can.
            write(platform, w["dev"], "water_level", [(t, float("nan"))])
            write(platform, w["dev"], "water_level", [(t + timedelta(seconds=1), -0.02)])
            wait_for(lambda: platform.sql(
                "SELECT count(*) FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id "
                "WHERE a.device_id = %s AND d.attempts >= 1", (w["dev"],))[0][0] >= 3,
                timeout=20, what="first attempts")
            assert thread.is_alive()
    finally:
        # Ingest never stores NaN: the shared database must not keep it for later tests.
        ex(platform, "DELETE FROM readings WHERE device_id = %s AND value = 'NaN'",
           (w["dev"],))
    rows = platform.sql("SELECT d.status, d.attempts, d.error, d.not_before > now() "
                        "FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id "
                        "WHERE a.device_id = %s", (w["dev"],))
    assert all(r[0] == "queued" and r[1] == 1 and r[2] and r[3] for r in rows), rows
    assert deliver.backoff(1) < deliver.backoff(2) <= deliver.backoff(9)


def test_alerts_role_cannot_touch_preferences(platform):
    with psycopg.connect(alerts_url(platform)) as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE alert_preferences SET email = 'x@evil.example'")


def test_alerts_list_shows_a_fields_alerts(platform, world, capsys):
    import argparse

    import orjson

    from agri.alerts import cli
    from agri.alerts.rules import HARVEST_WINDOW

    with psycopg.connect(alerts_url(platform), autocommit=True) as conn:
        open_alert(conn, Finding(f"harvest-window:{world['field']}:x", HARVEST_WINDOW,
                                 datetime.now(UTC), field_id=world["field"],
                                 evidence={"note": "<b>" * 5000}), now=datetime.now(UTC))
    settings = Settings(home=platform.home)
    assert cli.cmd_list(argparse.Namespace(field=world["field"], open=True, json=True),
                        settings) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert [r["rule"] for r in rows] == ["harvest-window"]
    assert len(orjson.dumps(rows[0]["evidence"])) < 4000
    assert cli.cmd_list(argparse.Namespace(field=world["other_field"], open=False, json=False),
                        settings) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_is_emailed_and_followed_up(platform, smtp_server, rule):  # noqa: F811
    """Each rule's alert, opened as its evaluation opens it, reaches the farmer
    through the real SMTP server, in Japanese with the page to open; its
    clearing sends the follow-up."""
    uid = secrets.token_hex(3)
    owner = add_user(platform, f"ar-{uid}")
    prefs(platform, owner, email=f"{owner}@example.jp")
    field = add_field(platform, f"arf-{uid}", owner)
    device = add_device(platform, f"ard-{uid}", field)
    r = RULES[rule]
    settings = Settings(home=platform.home, public_url="https://agri.example",
                        smtp_url=smtp_server.url)
    mine = lambda: to(smtp_server.messages(), f"{owner}@example.jp")  # noqa: E731
    with psycopg.connect(alerts_url(platform), autocommit=True) as conn:
        now = datetime.now(UTC)
        alert_id = open_alert(conn, Finding(key(r, device if r.subject == "device" else field),
                                            r, now, field_id=field,
                                            device_id=device if r.subject == "device" else None),
                              now=now)
        deliver.deliver_due(conn, settings, now=now)
        wait_for(lambda: len(mine()) == 1, timeout=10, what=f"the {rule} email")
        clear_alert(conn, alert_id, now=datetime.now(UTC))
        deliver.deliver_due(conn, settings, now=datetime.now(UTC))
        wait_for(lambda: len(mine()) == 2, timeout=10, what=f"the {rule} follow-up")
    opened, cleared = mine()
    assert f"https://agri.example/fields/{field}" in opened.get_content()
    assert "田 arf-" in opened["Subject"]
    assert cleared["Subject"].startswith("【解除】")
    if r.severity == "urgent":
        assert opened["Subject"].startswith("【至急】")
    assert platform.sql("SELECT event, status FROM alert_deliveries WHERE alert_id = %s "
                        "ORDER BY id", (alert_id,)) == [("opened", "sent"), ("cleared", "sent")]
