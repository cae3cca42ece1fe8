"""Commands to devices: what the platform sends, what a device answers, and
the log of each command from queued to its end (docs/device-commands.md).

The API queues a command (:func:`check` its name and arguments against the
device's profile). Ingest's :class:`Sender` publishes it, QoS 1, on the
device's command topic as ``{"id", "name", "args", "expires_at"}``, and
publishes it again every :data:`RESEND_S` while the device has not answered
and it has not expired; at ``expires_at`` an unanswered command is expired
and never sent again. The device answers on its acks topic with
``{"id", "status": "accepted" | "rejected" | "done", "reason"}``, which
ingest records with :class:`CommandLog`: only for a command of the device
whose topic the answer came on.

A device behind a LoRaWAN bridge gets the same object as a downlink through
its bridge's network server (devices/downlinks.py), again every
:data:`LORAWAN_RESEND_S` only (it receives downlinks after its uplinks), and
answers in an uplink.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import psycopg

from agri.devices import downlinks, topics
from agri.devices.profiles import Profile
from agri.devices.profiles import profile as find_profile

logger = logging.getLogger(__name__)

STATUSES = ("queued", "sent", "accepted", "rejected", "done", "expired")
OPEN = ("queued", "sent")  # not answered: sent (again) until expires_at
ANSWERS = ("accepted", "rejected", "done")  # what a device may say
# A device's answer moves a command on from these statuses only.
ANSWERED_FROM: Mapping[str, tuple[str, ...]] = {
    "accepted": OPEN, "rejected": (*OPEN, "accepted"), "done": (*OPEN, "accepted")}

RESEND_S = 10.0  # an unanswered command is published again this often
# ... and to a LoRaWAN device: its network server keeps the downlink queued
# until the device's next uplink, so a resend sooner only fills that queue.
LORAWAN_RESEND_S = 600.0
POLL_S = 1.0  # how often the sender looks for commands to send, notified or not
NOTIFY_CHANNEL = "device_commands"  # a queued command is notified here (migration 021)
SEND_LIMIT = 100  # commands published per round
MIN_EXPIRES_S = 5
MAX_EXPIRES_S = 7 * 86_400
MAX_OPEN = 20  # unanswered commands a device may have waiting
REASON_MAX_CHARS = 200  # of a device's reason for refusing
MAX_ID = 2**63 - 1


class CommandError(ValueError):
    """A command the device's profile does not accept as given; the message says why."""


class AckError(ValueError):
    """An answer on an acks topic that cannot be taken; the message says why."""


def check(profile: Profile, name: str, args: object) -> dict[str, float | int]:
    """The arguments of command ``name`` for a device of ``profile``, checked
    against what the profile declares (``Profile.commands``): every argument
    given, a number within its range, whole where it must be, nothing else."""
    command = profile.commands.get(name)
    if command is None:
        accepted = ", ".join(profile.commands) or "none"
        raise CommandError(f"profile {profile.name!r} does not accept the command {name!r}; "
                           f"it accepts: {accepted}")
    if not isinstance(args, dict):
        raise CommandError("args must be an object of argument: number")
    unknown = sorted(set(args) - set(command.args))
    if unknown:
        raise CommandError(f"{name} takes no argument {unknown[0][:40]!r}; it takes: "
                           f"{', '.join(command.args) or 'none'}")
    out: dict[str, float | int] = {}
    for arg in command.args.values():
        value = args.get(arg.name)
        unit = f" {arg.unit}" if arg.unit else ""
        if value is None:
            raise CommandError(f"{name} needs {arg.name} ({arg.low:g} to {arg.high:g}{unit})")
        if type(value) not in (int, float) or not math.isfinite(value):
            raise CommandError(f"{name}: {arg.name} must be a number")
        if arg.integer and value != int(value):
            raise CommandError(f"{name}: {arg.name} must be a whole number")
        if not arg.low <= value <= arg.high:
            raise CommandError(f"{name}: {arg.name} = {value:g} is outside {arg.low:g} to "
                               f"{arg.high:g}{unit}")
        out[arg.name] = int(value) if arg.integer else float(value)
    return out


def iso(t: datetime) -> str:
    """RFC 3339 in UTC, to the second: what devices are sent."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_object(command_id: int, name: str, args: Mapping, expires_at: datetime) -> dict:
    """A command as a device receives it, on its command topic or in a downlink."""
    return {"id": command_id, "name": name, "args": dict(args), "expires_at": iso(expires_at)}


def message(command_id: int, name: str, args: Mapping, expires_at: datetime) -> bytes:
    """A command as published on the device's command topic."""
    return orjson.dumps(command_object(command_id, name, args, expires_at))


@dataclass(frozen=True, slots=True)
class Ack:
    """A device's answer to one of its commands."""

    id: int
    status: str
    reason: str | None = None


def parse_ack(payload: bytes) -> Ack:
    """The answer in ``payload``; raises AckError naming what is wrong."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise AckError("an answer to a command is a JSON object "
                       "{\"id\", \"status\", \"reason\"}: malformed JSON") from None
    return ack_of(body)


def ack_of(body: object) -> Ack:
    """The answer that ``body`` (decoded JSON) is; raises AckError naming what is wrong."""
    if not isinstance(body, dict):
        raise AckError("an answer to a command is a JSON object {\"id\", \"status\", \"reason\"}")
    unknown = sorted(set(body) - {"id", "status", "reason"})
    if unknown:
        raise AckError(f"an answer to a command has no field {unknown[0][:40]!r}; "
                       f"it has id, status and reason")
    command_id = body.get("id")
    if type(command_id) is not int or not 1 <= command_id <= MAX_ID:
        raise AckError("an answer's \"id\" is the id of the command it answers (a whole number)")
    status = body.get("status")
    if status not in ANSWERS:
        raise AckError(f"an answer's \"status\" is one of {', '.join(ANSWERS)}")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > REASON_MAX_CHARS
                               or not reason.isprintable()):
        raise AckError(f"an answer's \"reason\" is text of at most {REASON_MAX_CHARS} "
                       f"printable characters")
    return Ack(command_id, status, reason or None)


_ANSWER = """UPDATE device_commands SET status = %(status)s,
    reason = CASE WHEN %(status)s = 'rejected' THEN %(reason)s ELSE coalesce(%(reason)s, reason)
             END,
    acknowledged_at = coalesce(acknowledged_at, now()),
    done_at = CASE WHEN %(status)s = 'done' THEN now() ELSE done_at END
WHERE id = %(id)s AND device_id = %(device)s AND status = ANY(%(from)s)
RETURNING id"""


class CommandLog:
    """Records devices' answers; one connection, reopened after failures.
    ``connect`` opens an autocommit connection."""

    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._connect = connect
        self._conn: psycopg.Connection | None = None

    def record(self, device_id: str, ack: Ack) -> None:
        """Apply ``ack`` from ``device_id`` to the command log; raises
        AckError when it answers no open command of that device. A repeated
        answer (a redelivery) changes nothing and is not an error. While the
        database is away it keeps trying, as ingest cannot commit anyway."""
        delay = 0.2
        while True:
            try:
                return self._record(device_id, ack)
            except psycopg.OperationalError as exc:
                logger.warning("command log unavailable (%s); retrying", exc)
                self.close()
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _record(self, device_id: str, ack: Ack) -> None:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        conn = self._conn
        params = {"status": ack.status, "reason": ack.reason, "id": ack.id,
                  "device": device_id, "from": list(ANSWERED_FROM[ack.status])}
        if conn.execute(_ANSWER, params).fetchone():
            return
        row = conn.execute("SELECT status FROM device_commands WHERE id = %s AND device_id = %s",
                           (ack.id, device_id)).fetchone()
        if row is None:
            # Another device's command is answered the same way: its id says nothing.
            raise AckError(f"device {device_id!r} has no command {ack.id}")
        status = row[0]
        if status == ack.status or (status == "done" and ack.status == "accepted"):
            return  # said before, or overtaken by the device's later answer
        raise AckError(f"command {ack.id} is {status} already; an answer cannot change it "
                       f"to {ack.status}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- sending ---------------------------------------------------------------------------
_EXPIRE = """UPDATE device_commands c SET status = 'expired',
    reason = CASE WHEN c.expires_at <= now() THEN 'no answer before it expired'
                  WHEN d.revoked_at IS NOT NULL THEN 'the device was revoked'
                  ELSE 'the device''s LoRaWAN bridge was revoked' END
FROM devices d LEFT JOIN lorawan_bridges b ON b.name = d.bridge
WHERE d.id = c.device_id AND c.status IN ('queued', 'sent')
  AND (c.expires_at <= now() OR d.revoked_at IS NOT NULL OR b.revoked_at IS NOT NULL)
RETURNING c.id"""

_DUE = """SELECT c.id, c.device_id, c.name, c.args, c.expires_at,
    extract(epoch FROM c.expires_at - now())::float8, d.profile, d.dev_eui,
    b.kind, b.application, b.tenant
FROM device_commands c
JOIN devices d ON d.id = c.device_id
LEFT JOIN lorawan_bridges b ON b.name = d.bridge
WHERE c.status IN ('queued', 'sent') AND c.expires_at > now()
  AND (c.sent_at IS NULL OR c.sent_at <= now() - make_interval(
       secs => CASE WHEN d.bridge IS NULL THEN %(resend)s ELSE %(lorawan_resend)s END))
ORDER BY c.id LIMIT %(limit)s
FOR UPDATE OF c SKIP LOCKED"""

_SENT = """UPDATE device_commands SET sent_at = now(), attempts = attempts + 1,
    status = CASE WHEN status = 'queued' THEN 'sent' ELSE status END
WHERE id = ANY(%s)"""

# topic, payload, seconds until it expires -> whether the broker took it
Publish = Callable[[str, bytes, float], bool]


def _addressed(command_id: int, device_id: str, command: dict, profile: str,
               dev_eui: str | None, kind: str | None, application: str | None,
               tenant: str | None) -> tuple[str, bytes]:
    """(topic, payload) of a command: on the device's own command topic, or
    as a downlink through its bridge."""
    if kind is None:
        return topics.commands_topic(device_id), orjson.dumps(command)
    return downlinks.downlink(downlinks.Route(kind, application, tenant), device_id=device_id,
                              dev_eui=dev_eui, port=find_profile(profile).downlink_port,
                              command_id=command_id, command=command)


class Sender:
    """Publishes queued commands, resends unanswered ones every ``resend_s``
    and expires those past ``expires_at`` (and those of revoked devices).
    Several ingest workers may run one each: a command is locked by the one
    sending it (SKIP LOCKED), so each round sends it once."""

    def __init__(self, connect: Callable[[], psycopg.Connection], publish: Publish, *,
                 resend_s: float = RESEND_S, lorawan_resend_s: float = LORAWAN_RESEND_S,
                 poll_s: float = POLL_S) -> None:
        self._connect = connect
        self._publish = publish
        self.resend_s = resend_s
        self.lorawan_resend_s = lorawan_resend_s
        self.poll_s = poll_s
        self._conn: psycopg.Connection | None = None
        self._listen: psycopg.Connection | None = None

    def step(self) -> tuple[int, int]:
        """One round: (commands published, commands expired)."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        conn = self._conn
        with conn.transaction():
            expired = len(conn.execute(_EXPIRE).fetchall())
        with conn.transaction():
            due = conn.execute(_DUE, {"resend": self.resend_s, "limit": SEND_LIMIT,
                                      "lorawan_resend": self.lorawan_resend_s}).fetchall()
            sent = []
            for command_id, device_id, name, args, expires_at, left_s, *device in due:
                topic, payload = _addressed(command_id, device_id,
                                            command_object(command_id, name, args, expires_at),
                                            *device)
                if not self._publish(topic, payload, left_s):
                    break  # the broker is away: the rest waits for the next round
                sent.append(command_id)
            if sent:
                conn.execute(_SENT, (sent,))
        if sent or expired:
            logger.info("commands: %d published, %d expired", len(sent), expired)
        return len(sent), expired

    def run(self, stopping: threading.Event) -> None:
        """Rounds until ``stopping``: one as soon as a command is queued (the
        insert trigger's NOTIFY, migration 021), else every ``poll_s``; a
        database outage delays them (other errors are raised)."""
        delay = 0.0
        while not stopping.wait(delay):
            try:
                self.step()
                self.wait_for_commands(self.poll_s)
                delay = 0.0
            except psycopg.OperationalError as exc:
                logger.warning("command sender: database unavailable (%s); retrying", exc)
                self.close()
                delay = min(max(delay, 0.2) * 2, 5.0)
        self.close()

    def wait_for_commands(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a newly queued command; whether one was.
        The listening connection is the sender's own, doing nothing else, so
        a notification sent meanwhile waits for it."""
        if self._listen is None or self._listen.closed:
            self._listen = self._connect()
            self._listen.autocommit = True
            self._listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return any(True for _ in self._listen.notifies(timeout=timeout_s, stop_after=1))

    def close(self) -> None:
        for conn in (self._conn, self._listen):
            if conn is not None:
                conn.close()
        self._conn = self._listen = None
