"""A gate that fails, through the real broker, ingest, database and SMTP
server: hold depth asks the supply gate to open a paddy below its band, the
simulated gate's motor stalls and it refuses, and the alerts service emails
the farmer that the gate needs them, with the field's page; the farmer of a
neighbouring field with a working gate gets nothing about it."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta

import psycopg

from agri.alerts import service
from agri.settings import Settings
from agri.simulator.gates import STALLED, GateBehaviour, GateFleet, SimGate
from agri.water.service import run_once
from tests.fix_smtp import smtp_server  # noqa: F401 - fixture
from tests.fix_stack import wait_for
from tests.test_alerts_rules import add_field, add_user, ex, write


def _field_with_gate(platform, uid: str, name: str, *, stalls: bool) -> tuple[str, SimGate]:
    owner = add_user(platform, f"wa-{name}-{uid}")
    ex(platform, "INSERT INTO alert_preferences (user_name, email, email_on) "
                 "VALUES (%s, %s, true)", (owner, f"{owner}@example.jp"))
    field = add_field(platform, f"waf-{name}-{uid}", owner, low=0.03, high=0.06)
    platform.add_device(f"{field}-paddy", field_id=field, owner=owner)
    password = platform.add_device(f"{field}-in", "water-gate", field_id=field, owner=owner,
                                   gate_role="supply")
    ex(platform, "INSERT INTO water_control (field_id, mode, updated_by) "
                 "VALUES (%s, 'hold', %s)", (field, owner))
    behaviour = GateBehaviour(fail_rate=1.0 if stalls else 0.0, silent_share=0.0,
                              refuse_share=1.0)
    gate = SimGate(platform.device_url(f"{field}-in", password), f"{field}-in",
                   behaviour=behaviour)
    return field, gate


def test_a_stalled_gate_reaches_its_farmer_by_email(platform, ingest, smtp_server):  # noqa: F811
    uid = secrets.token_hex(3)
    broken, broken_gate = _field_with_gate(platform, uid, "broken", stalls=True)
    working, working_gate = _field_with_gate(platform, uid, "working", stalls=False)
    stop = threading.Event()
    settings = Settings(home=platform.home, public_url="https://agri.example",
                        smtp_url=smtp_server.url)
    alerts = threading.Thread(target=service.serve, args=(settings, stop),
                              kwargs={"poll_s": 0.2, "schedule_s": 1.0}, daemon=True)
    water_url = Settings(home=platform.home).db_url("water")
    with GateFleet([broken_gate, working_gate]):
        alerts.start()
        try:
            # Both paddies 1 cm deep against a 3-6 cm band: hold depth opens their gates.
            t = datetime.now(UTC) - timedelta(minutes=1)
            for field in (broken, working):
                write(platform, f"{field}-paddy", "water_level", [(t, 0.01)])
            with psycopg.connect(water_url, autocommit=True) as conn:
                decided = {(d.field_id, d.action) for d in run_once(conn, now=datetime.now(UTC))}
            assert {(broken, "open"), (working, "open")} <= decided
            wait_for(lambda: platform.sql(
                "SELECT count(*) FROM device_commands WHERE device_id IN (%s, %s) "
                "AND status IN ('done', 'rejected')", (f"{broken}-in", f"{working}-in")
            )[0][0] == 2, timeout=30, what="both gates' answers")
            assert working_gate.position == 100.0 and broken_gate.position == 0.0
            got = wait_for(lambda: [m for m in smtp_server.messages()
                                    if f"wa-broken-{uid}@example.jp" in m["To"]],
                           timeout=30, what="the broken gate's email")
        finally:
            stop.set()
            alerts.join(10)
    assert not alerts.is_alive()
    [mail] = got
    body = mail.get_content()
    assert f"{broken}-in" in body and f"https://agri.example/fields/{broken}" in body
    [(rule, severity, evidence)] = platform.sql(
        "SELECT rule, severity, evidence FROM alerts WHERE device_id = %s", (f"{broken}-in",))
    assert (rule, severity) == ("gate-not-answering", "urgent")
    assert evidence["status"] == "rejected" and evidence["reason"] == STALLED
    assert platform.sql("SELECT status FROM alert_deliveries d JOIN alerts a "
                        "ON a.id = d.alert_id WHERE a.device_id = %s",
                        (f"{broken}-in",)) == [("sent",)]
    # The working gate opened the other paddy: no alert about it, no mail to its farmer.
    assert platform.sql("SELECT count(*) FROM alerts WHERE device_id = %s",
                        (f"{working}-in",)) == [(0,)]
    assert not [m for m in smtp_server.messages()
                if f"wa-working-{uid}@example.jp" in m["To"]]
    # The refusal and the decision that asked for the move are in the field's log.
    assert platform.sql("SELECT action FROM water_control_log WHERE field_id = %s "
                        "ORDER BY id LIMIT 1", (broken,)) == [("open",)]
