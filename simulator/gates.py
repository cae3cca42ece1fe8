"""Simulated water-gate devices (profile ``water-gate``) over real MQTT.

Each gate connects with its own device credentials (client id = device id),
subscribes to its command topic and answers on its acks topic as
docs/device-commands.md describes: ``accepted`` as soon as a command is taken,
then ``done`` once the gate has moved; ``rejected`` with a reason for a
command or argument it cannot take. A gate moves to the commanded position
``move_delay_s`` after accepting, and reports ``gate_position`` (%) and
``gate_state`` (open when above 0) by SenML after each move and, with
``report_every_s``, periodically.

A gate fails a move at ``fail_rate``: it either answers ``done`` and stays
where it was (a jammed gate whose controller believes it moved), never
answers at all (a controller that hung), for ``silent_share`` of the
failures, or, for ``refuse_share`` of the others, notices that its motor
stalled and answers ``rejected`` with that reason. A repeated command (the
platform resends an unanswered one) gets the answer it already had and never
moves the gate twice.

Readings carry the time of ``clock()`` (seconds since the epoch): the wall
clock, or a simulated one when a bench replays a season.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import orjson

from agri import mqtt
from agri.devices.topics import acks_topic, commands_topic, senml_topic
from agri.simulator.encoders import senml_pack

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
SUBSCRIBE_QOS = 1
POSITION_RANGE = (0.0, 100.0)
INTERVAL_RANGE_S = (60, 86_400)  # set_interval, as the profile declares
# The commands of the water-gate profile a gate takes without moving.
NO_MOVE_COMMANDS = ("set_target_level", "set_interval", "reboot")
STALLED = "motor stalled: the gate did not move"


@dataclass(frozen=True, slots=True)
class GateBehaviour:
    """How a simulated gate behaves: seconds from accepting to having moved, the
    share of moves that fail, how many of those get no answer, how many of the
    answered ones are refused as a stalled motor, the seconds between periodic
    reports (None: only after moves), and the seed of its failures."""

    move_delay_s: float = 0.0
    fail_rate: float = 0.0
    silent_share: float = 0.5
    refuse_share: float = 0.0
    report_every_s: float | None = None
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """What a gate did with one command: its final status (None: no answer)."""

    command_id: int
    name: str
    status: str | None
    reason: str | None = None


def _reject(reason: str) -> tuple[str, str]:
    return "rejected", reason


def check_command(body: object) -> tuple[int | None, str, dict, tuple[str, str] | None]:
    """(id, name, args, refusal) of a command message; refusal is (status, reason)
    when the gate cannot take it, None when it can."""
    if not isinstance(body, dict):
        return None, "", {}, _reject("a command is a JSON object")
    command_id = body.get("id")
    if type(command_id) is not int or command_id < 1:
        return None, "", {}, _reject("a command needs a whole-number id")
    name = body.get("name")
    args = body.get("args")
    if not isinstance(args, dict):
        return command_id, str(name), {}, _reject("args must be an object")
    if name == "set_gate":
        position = args.get("position")
        if type(position) not in (int, float) or not (
                POSITION_RANGE[0] <= position <= POSITION_RANGE[1]):
            return command_id, name, args, _reject("position must be a number from 0 to 100")
        return command_id, name, args, None
    if name == "set_interval":
        seconds = args.get("seconds")
        if type(seconds) not in (int, float) or not (
                INTERVAL_RANGE_S[0] <= seconds <= INTERVAL_RANGE_S[1]):
            return command_id, name, args, _reject(
                f"seconds must be a number from {INTERVAL_RANGE_S[0]} to {INTERVAL_RANGE_S[1]}")
        return command_id, name, args, None
    if name in NO_MOVE_COMMANDS:
        return command_id, name, args, None
    return command_id, str(name)[:40], args, _reject(f"unknown command {str(name)[:40]!r}")


class SimGate:
    """One simulated water gate on its own MQTT connection."""

    def __init__(self, url: str, device_id: str, *, behaviour: GateBehaviour = GateBehaviour(),
                 position: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.id = device_id
        self.behaviour = behaviour
        self.clock = clock
        self.position = float(position)
        self.answers: dict[int, Answer] = {}
        self.moves = 0
        self.failed_moves = 0
        self._rng = np.random.default_rng([behaviour.seed, sum(device_id.encode())])
        self._lock = threading.Lock()
        self._moved = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._reporter: threading.Thread | None = None
        self.client = mqtt.make_client(url, client_id=device_id)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # -- connection ---------------------------------------------------------------------
    def start(self) -> SimGate:
        mqtt.connect(self.client, blocking=False)
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._refused:
            self.client.loop_stop()
            raise RuntimeError(f"gate {self.id}: the broker did not accept it "
                               f"({self._refused or 'no answer'})")
        if self.behaviour.report_every_s:
            self._reporter = threading.Thread(target=self._report_loop, daemon=True)
            self._reporter.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        if self._reporter is not None:
            self._reporter.join(5)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            self._connected.set()
            return
        # Up once subscribed (SUBACK), so no command sent after start() is missed.
        client.subscribe(commands_topic(self.id), qos=SUBSCRIBE_QOS)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._refused = f"subscription refused ({reason_codes[0]})"
        self._connected.set()

    # -- commands -----------------------------------------------------------------------
    def _on_message(self, client, userdata, message) -> None:
        try:
            body = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            logger.warning("gate %s: a command that is not JSON", self.id)
            return
        command_id, name, args, refusal = check_command(body)
        if command_id is None:
            logger.warning("gate %s: a command without an id: %s", self.id, refusal)
            return
        with self._lock:
            earlier = self.answers.get(command_id)
        if earlier is not None:  # a resend: the same answer, no second move
            if earlier.status is not None:
                self._ack(command_id, earlier.status, earlier.reason)
            return
        if refusal is not None:
            self._finish(Answer(command_id, name, *refusal))
            return
        with self._lock:  # taken: a resend while moving is not a new command
            self.answers[command_id] = Answer(command_id, name, "accepted")
        self._ack(command_id, "accepted")
        if name == "set_gate":
            delay = self.behaviour.move_delay_s
            if delay > 0:
                threading.Timer(delay, self._move, (command_id, float(args["position"]))).start()
            else:
                self._move(command_id, float(args["position"]))
        else:
            self._finish(Answer(command_id, name, "done"))

    def _move(self, command_id: int, position: float) -> None:
        with self._lock:
            fails = self._rng.random() < self.behaviour.fail_rate
            silent = fails and self._rng.random() < self.behaviour.silent_share
            refused = fails and not silent and self.behaviour.refuse_share > 0 and \
                self._rng.random() < self.behaviour.refuse_share
            if fails:
                self.failed_moves += 1
            else:
                self.position = position
                self.moves += 1
            self._moved.notify_all()
        if silent:
            with self._lock:
                self.answers[command_id] = Answer(command_id, "set_gate", None,
                                                  "hung: no answer")
            return
        self.report()
        if refused:
            self._finish(Answer(command_id, "set_gate", *_reject(STALLED)))
            return
        self._finish(Answer(command_id, "set_gate", "done"))

    def _finish(self, answer: Answer) -> None:
        with self._lock:
            self.answers[answer.command_id] = answer
        self._ack(answer.command_id, answer.status, answer.reason)

    def _ack(self, command_id: int, status: str, reason: str | None = None) -> None:
        body = {"id": command_id, "status": status} | ({"reason": reason} if reason else {})
        self.client.publish(acks_topic(self.id), orjson.dumps(body), qos=1)

    # -- readings -----------------------------------------------------------------------
    def report(self, t: float | None = None) -> None:
        """Publish the gate's position and state at ``t`` (default: the gate's clock)."""
        with self._lock:
            position = self.position
        pack = senml_pack(self.id, self.clock() if t is None else t, {
            "gate_position": ("%", round(position, 2)),
            "gate_state": ("/", 1.0 if position > 0 else 0.0)})
        self.client.publish(senml_topic(self.id), pack, qos=1)

    def _report_loop(self) -> None:
        while not self._stop.wait(self.behaviour.report_every_s):
            self.report()

    def settled(self) -> bool:
        """No command taken and still waiting to move."""
        with self._lock:
            return not any(a.status == "accepted" for a in self.answers.values())


class GateFleet:
    """Many simulated gates, started and stopped together."""

    def __init__(self, gates: Iterable[SimGate]) -> None:
        self.gates = {g.id: g for g in gates}

    def __enter__(self) -> GateFleet:
        started = []
        try:
            for gate in self.gates.values():
                started.append(gate.start())
        except BaseException:
            for gate in started:
                gate.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for gate in self.gates.values():
            gate.stop()

    def positions(self) -> dict[str, float]:
        return {gid: g.position for gid, g in self.gates.items()}

    def answered(self) -> int:
        """Commands the gates have a final answer to, or chose to leave unanswered."""
        return sum(1 for g in self.gates.values() for a in g.answers.values()
                   if a.status != "accepted")

    def settled(self) -> bool:
        return all(g.settled() for g in self.gates.values())

    def report_all(self, t: float | None = None) -> None:
        for gate in self.gates.values():
            gate.report(t)
