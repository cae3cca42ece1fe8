"""Simulated water gates over the real Mosquitto, ingest and database: a command
queued for a gate is delivered by ingest's sender, answered accepted then done,
and the gate's new position is stored as a reading; a bad argument is refused
with a reason; a failing gate does not move, whether it answers or not; another
device's credentials cannot answer for a gate."""

from __future__ import annotations

import time

import orjson

from agri.devices.topics import acks_topic
from agri.simulator.gates import GateBehaviour, GateFleet, SimGate
from tests.fix_stack import wait_for

EXPIRES = "now() + interval '10 minutes'"


def _queue(platform, device: str, name: str, args: dict) -> int:
    return platform.sql(
        f"INSERT INTO device_commands (device_id, name, args, requested_by, expires_at) "
        f"VALUES (%s, %s, %s, 'admin', {EXPIRES}) RETURNING id",
        (device, name, orjson.dumps(args).decode()))[0][0]


def _status(platform, command_id: int) -> tuple[str, str | None]:
    return tuple(platform.sql("SELECT status, reason FROM device_commands WHERE id = %s",
                              (command_id,))[0])


def _positions(platform, device: str) -> list[float]:
    return [r[0] for r in platform.sql(
        "SELECT value FROM readings WHERE device_id = %s AND metric = 'gate_position' "
        "ORDER BY time", (device,))]


def test_gate_moves_answers_and_reports_through_ingest(platform, ingest) -> None:
    password = platform.add_device("sg-gate", "water-gate")
    gate = SimGate(platform.device_url("sg-gate", password), "sg-gate")
    with GateFleet([gate]):
        command = _queue(platform, "sg-gate", "set_gate", {"position": 40})
        wait_for(lambda: _status(platform, command)[0] == "done", what="the gate's done")
        assert gate.position == 40.0
        wait_for(lambda: _positions(platform, "sg-gate") == [40.0], what="the stored position")
        state = platform.sql("SELECT value FROM readings WHERE device_id = 'sg-gate' "
                             "AND metric = 'gate_state'")
        assert state == [(1.0,)]
        bad = _queue(platform, "sg-gate", "set_interval", {"seconds": 5})
        wait_for(lambda: _status(platform, bad)[0] == "rejected", what="the refusal")
        assert "seconds" in _status(platform, bad)[1]
        closed = _queue(platform, "sg-gate", "set_gate", {"position": 0})
        wait_for(lambda: _status(platform, closed)[0] == "done", what="the gate's close")
        wait_for(lambda: _positions(platform, "sg-gate") == [40.0, 0.0], what="closed stored")
        assert gate.moves == 2


def test_failing_gates_do_not_move(platform, ingest) -> None:
    jammed_pw = platform.add_device("sg-jammed", "water-gate")
    hung_pw = platform.add_device("sg-hung", "water-gate")
    jammed = SimGate(platform.device_url("sg-jammed", jammed_pw), "sg-jammed",
                     behaviour=GateBehaviour(fail_rate=1.0, silent_share=0.0))
    hung = SimGate(platform.device_url("sg-hung", hung_pw), "sg-hung",
                   behaviour=GateBehaviour(fail_rate=1.0, silent_share=1.0))
    with GateFleet([jammed, hung]):
        a = _queue(platform, "sg-jammed", "set_gate", {"position": 80})
        b = _queue(platform, "sg-hung", "set_gate", {"position": 80})
        wait_for(lambda: _status(platform, a)[0] == "done", what="the jammed gate's done")
        wait_for(lambda: _status(platform, b)[0] == "accepted", what="the hung gate's accept")
        time.sleep(1.5)  # a hung gate never says done
        assert _status(platform, b)[0] == "accepted"
        assert jammed.position == hung.position == 0.0
        assert jammed.failed_moves == hung.failed_moves == 1
        # The jammed gate reports where it really is: still closed.
        wait_for(lambda: _positions(platform, "sg-jammed") == [0.0], what="jammed position")
        assert _positions(platform, "sg-hung") == []


def test_another_device_cannot_answer_for_a_gate(platform, ingest) -> None:
    gate_pw = platform.add_device("sg-quiet", "water-gate")
    intruder_pw = platform.add_device("sg-intruder", "water-gate")
    command = _queue(platform, "sg-quiet", "set_gate", {"position": 50})
    intruder = platform.device_client("sg-intruder", intruder_pw)
    try:
        # Its own acks topic with the other gate's command id, and the other's topic.
        intruder.publish(acks_topic("sg-intruder"),
                         orjson.dumps({"id": command, "status": "done"}), qos=1).wait_for_publish(5)
        intruder.publish(acks_topic("sg-quiet"),
                         orjson.dumps({"id": command, "status": "done"}), qos=1)
        time.sleep(2.0)
        assert _status(platform, command)[0] in ("queued", "sent")
    finally:
        intruder.disconnect()
        intruder.loop_stop()
    gate = SimGate(platform.device_url("sg-quiet", gate_pw), "sg-quiet")
    with GateFleet([gate]):
        # The resend (every 10 s) reaches the gate once it is up.
        wait_for(lambda: _status(platform, command)[0] == "done", timeout=30,
                 what="the resent command's done")
    assert gate.position == 50.0
