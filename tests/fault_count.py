"""Counting what a fault did, the way Jepsen counts it.

Every reading a fault test publishes has a unique key (device, metric, time),
and every message is recorded with the broker's answer to it. Afterwards the
readings table is compared with what was published:

- lost: in a message the broker acknowledged (PUBACK with a success code)
  but absent from the table;
- duplicated: stored more than once (the unique key makes this 0 by
  construction, so the rollups are checked too: each hourly and daily
  bucket must count exactly the distinct readings stored in it);
- unexpected: stored but never published.

A reading whose message was never acknowledged may be stored or not; it is
neither lost nor unexpected.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
import psycopg

from agri import mqtt
from agri.devices.topics import senml_topic
from tests.fix_stack import wait_for

READINGS_PER_PACK = 5
METRIC = "water_temp"
WINDOW = 2_000  # messages in flight per stream (paho's packet ids wrap at 65,535)
CLIENT_INFLIGHT = 500  # paho's own limit per client (its default of 20 throttles a test)
PUBLISH_TIMEOUT_S = 120.0
TOKYO_OFFSET_S = 9 * 3600

# A success code: the broker took the message, but no session subscribes to
# it, so nobody will ever receive it. The device contract says to send such a
# message again later (a SenML reading keeps its time, so a resend is harmless).
NO_MATCHING_SUBSCRIBERS = 0x10
RESEND_AFTER_S = 0.5

Key = tuple[str, str, int]  # device id, metric, time in microseconds since 1970


@dataclass
class Message:
    keys: tuple[Key, ...]
    published_at: float
    client_no: int = 0
    payload: bytes = b""
    acked_at: float | None = None
    reason: int | None = None  # the PUBACK's reason code

    @property
    def acked(self) -> bool:
        return self.reason is not None and self.reason < 0x80


@dataclass
class Count:
    """What one comparison of the ledger with the database found."""

    published: int  # readings published (acknowledged or not)
    acked: int  # readings in acknowledged messages
    stored: int  # rows in the readings table for the ledger's devices
    lost: set[Key]
    duplicated: int  # rows beyond one per key
    unexpected: set[Key]
    rollup_errors: list[str] = field(default_factory=list)  # buckets that count wrongly
    reasons: dict = field(default_factory=dict)  # PUBACK reason code -> messages
    # Lost readings whose message the broker answered 0x10 (no subscribers).
    lost_unsubscribed: set[Key] = field(default_factory=set)

    def __str__(self) -> str:
        return (f"published {self.published}, acknowledged {self.acked}, stored {self.stored}: "
                f"lost {len(self.lost)}, duplicated {self.duplicated}, "
                f"unexpected {len(self.unexpected)}, rollup errors {len(self.rollup_errors)}, "
                f"PUBACK reasons {self.reasons} (lost after 0x10: {len(self.lost_unsubscribed)})"
                + (f" (first: {self.rollup_errors[:3]})" if self.rollup_errors else ""))

    def assert_exact(self, *, lost: int = 0, unsubscribed_may_be_lost: bool = False) -> None:
        """Nothing duplicated or unexpected, rollups exact, and ``lost`` readings
        lost; with ``unsubscribed_may_be_lost`` also those of messages the
        broker answered "no matching subscribers" (a known broker limitation
        the test names)."""
        n_lost = len(self.lost - self.lost_unsubscribed if unsubscribed_may_be_lost
                     else self.lost)
        assert (n_lost, self.duplicated, len(self.unexpected), self.rollup_errors) == (
            lost, 0, 0, []), str(self)


class Ledger:
    """Every message published by a stream's devices and the broker's answer."""

    def __init__(self, device_ids: list[str]) -> None:
        self.device_ids = device_ids
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._inflight: dict[tuple[int, int], Message] = {}
        self._early: dict[tuple[int, int], tuple[float, int]] = {}
        self.refused: list[Message] = []  # answered "no matching subscribers"

    # paho calls this on its network thread while holding its own lock; the
    # publishing thread never holds our lock while calling paho.
    def on_publish(self, client_no: int, mid: int, reason: int) -> None:
        now = time.time()
        with self._cond:
            message = self._inflight.pop((client_no, mid), None)
            if message is None:
                self._early[(client_no, mid)] = (now, reason)
            else:
                message.acked_at, message.reason = now, reason
                if reason == NO_MATCHING_SUBSCRIBERS:
                    self.refused.append(message)
            self._cond.notify_all()

    def sent(self, client_no: int, mid: int, message: Message) -> None:
        with self._cond:
            self.messages.append(message)
            early = self._early.pop((client_no, mid), None)
            if early is None:
                self._inflight[(client_no, mid)] = message
            else:
                message.acked_at, message.reason = early
                if message.reason == NO_MATCHING_SUBSCRIBERS:
                    self.refused.append(message)

    def take_refused(self) -> list[Message]:
        with self._cond:
            taken, self.refused = self.refused, []
            return taken

    def wait_inflight(self, at_most: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._inflight) <= at_most, timeout)

    @property
    def unanswered(self) -> int:
        with self._cond:
            return len(self._inflight)

    def acked_keys(self) -> set[Key]:
        with self._cond:
            return {k for m in self.messages if m.acked for k in m.keys}

    def published_keys(self) -> set[Key]:
        with self._cond:
            return {k for m in self.messages for k in m.keys}

    def _keys_answered(self, reason: int) -> set[Key]:
        with self._cond:
            return {k for m in self.messages if m.reason == reason for k in m.keys}

    def reasons(self) -> Counter:
        with self._cond:
            return Counter(m.reason for m in self.messages)

    def stored_rows(self, db_url: str) -> list[Key]:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT device_id, metric, (extract(epoch FROM time) * 1000000)::bigint "
                "FROM readings WHERE device_id = ANY(%s)", (self.device_ids,)).fetchall()
        return [(d, m, t) for d, m, t in rows]

    def stored_count(self, db_url: str) -> int:
        with psycopg.connect(db_url) as conn:
            return conn.execute("SELECT count(*) FROM readings WHERE device_id = ANY(%s)",
                                (self.device_ids,)).fetchone()[0]

    def count(self, db_url: str) -> Count:
        rows = self.stored_rows(db_url)
        stored = Counter(rows)
        acked, published = self.acked_keys(), self.published_keys()
        return Count(
            published=len(published), acked=len(acked), stored=len(rows),
            lost=acked - stored.keys(),
            duplicated=len(rows) - len(stored),
            unexpected=stored.keys() - published,
            rollup_errors=self._rollup_errors(db_url, stored.keys()),
            reasons=dict(self.reasons()),
            lost_unsubscribed=(acked - stored.keys()) & self._keys_answered(
                NO_MATCHING_SUBSCRIBERS))

    def _rollup_errors(self, db_url: str, keys) -> list[str]:
        """Each hourly and (Asia/Tokyo) daily bucket against the stored readings."""
        hours: Counter = Counter()
        days: Counter = Counter()
        for device, metric, t_us in keys:
            t = t_us // 1_000_000
            hours[(device, metric, t - t % 3600)] += 1
            days[(device, metric, (t + TOKYO_OFFSET_S) // 86400)] += 1
        with psycopg.connect(db_url) as conn:
            hourly = Counter({(d, m, int(b)): n for d, m, b, n in conn.execute(
                "SELECT device_id, metric, extract(epoch FROM bucket), count "
                "FROM readings_hourly WHERE device_id = ANY(%s)", (self.device_ids,))})
            daily = Counter({(d, m, int(day)): n for d, m, day, n in conn.execute(
                "SELECT device_id, metric, day - date '1970-01-01', count "
                "FROM readings_daily WHERE device_id = ANY(%s)", (self.device_ids,))})
        errors = []
        for name, want, got in (("hourly", hours, hourly), ("daily", days, daily)):
            for bucket in sorted(want.keys() | got.keys()):
                if want[bucket] != got[bucket]:
                    errors.append(f"{name} {bucket}: {got[bucket]} counted, "
                                  f"{want[bucket]} stored")
        return errors

    def wait_all_acked_stored(self, db_url: str, *, timeout: float = 120.0,
                              quiet_s: float = 10.0) -> Count:
        """Poll until every acknowledged reading is stored, or until the stored
        count has not moved for ``quiet_s`` (something is lost: the count then
        says what); then count."""
        return self._wait(db_url, len(self.acked_keys()), quiet_s=quiet_s, timeout=timeout)

    def wait_settled(self, db_url: str, *, quiet_s: float = 3.0,
                     timeout: float = 120.0) -> Count:
        """Poll until the stored count has not moved for ``quiet_s``; then count
        (for a test where some loss is expected, so 'all stored' never comes)."""
        return self._wait(db_url, None, quiet_s=quiet_s, timeout=timeout)

    def _wait(self, db_url: str, want: int | None, *, quiet_s: float,
              timeout: float) -> Count:
        state = {"n": -1, "since": time.monotonic()}

        def done() -> bool:
            n = self.stored_count(db_url)
            if want is not None and n >= want:
                return True
            if n != state["n"]:
                state["n"], state["since"] = n, time.monotonic()
                return False
            return time.monotonic() - state["since"] >= quiet_s

        wait_for(done, timeout=timeout, what="the stored count to reach the acknowledged "
                 "or settle")
        return self.count(db_url)


class Stream:
    """Publishes ``messages`` SenML packs of ``READINGS_PER_PACK`` readings
    round-robin over ``devices`` new devices, QoS 1, from a thread, each device
    connected with its own id as client id. Every reading has its own time.
    ``rate`` (messages/s) paces the stream; without it, as fast as the broker
    takes them. The clients reconnect by themselves (paho) after a broker
    restart and resend what was not acknowledged; as the device contract asks,
    a message answered "no matching subscribers" is sent again a little later."""

    def __init__(self, platform, prefix: str, *, devices: int, messages: int,
                 rate: float | None = None) -> None:
        self.ids = [f"{prefix}-{i}" for i in range(devices)]
        self.ledger = Ledger(self.ids)
        self.clients = []
        for n, device in enumerate(self.ids):
            client = mqtt.make_client(platform.device_url(device, platform.add_device(device)),
                                      client_id=device)
            client.max_inflight_messages_set(CLIENT_INFLIGHT)
            client.on_publish = (lambda _c, _u, mid, reason, _p, n=n:
                                 self.ledger.on_publish(n, mid, reason.value))
            mqtt.connect(client)
            client.loop_start()
            self.clients.append(client)
        self.messages = messages
        self.rate = rate
        self.sent = 0
        self.t0 = int(time.time()) - 20 * 86400
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def readings(self) -> int:
        return self.messages * READINGS_PER_PACK

    def _run(self) -> None:
        try:
            started = time.monotonic()
            for k in range(self.messages):
                if self.rate:
                    ahead = started + k / self.rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)  # pacing the load, not waiting for a state
                i = k % len(self.ids)
                base = self.t0 + (k // len(self.ids)) * 60
                pack = [{"bt": base, "n": METRIC, "v": 20.0, "t": 0}]
                pack += [{"n": METRIC, "v": 20.0 + j / 10, "t": j}
                         for j in range(1, READINGS_PER_PACK)]
                keys = tuple((self.ids[i], METRIC, (base + j) * 1_000_000)
                             for j in range(READINGS_PER_PACK))
                self._publish(Message(keys, time.time(), i, orjson.dumps(pack)))
                self.sent += 1
                if not self.ledger.wait_inflight(WINDOW, PUBLISH_TIMEOUT_S):
                    raise TimeoutError("the broker acknowledged nothing for "
                                       f"{PUBLISH_TIMEOUT_S:.0f} s")
                if self.ledger.refused:
                    self._resend()
            deadline = time.monotonic() + PUBLISH_TIMEOUT_S
            while time.monotonic() < deadline:
                self.ledger.wait_inflight(0, PUBLISH_TIMEOUT_S)
                if not self.ledger.refused:
                    break
                time.sleep(RESEND_AFTER_S)  # a device's back-off before it sends again
                self._resend()
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def _publish(self, message: Message) -> None:
        i = message.client_no
        info = self.clients[i].publish(senml_topic(self.ids[i]), message.payload, qos=1)
        self.ledger.sent(i, info.mid, message)

    def _resend(self) -> None:
        for old in self.ledger.take_refused():
            self._publish(Message(old.keys, time.time(), old.client_no, old.payload))

    def start(self) -> Stream:
        self.thread.start()
        return self

    def join(self, *, all_answered: bool = True) -> None:
        """Wait for the stream to end and (unless told otherwise) for the broker
        to answer every message; then disconnect the devices."""
        self.thread.join(PUBLISH_TIMEOUT_S)
        assert not self.thread.is_alive(), "publisher stalled"
        assert self.error is None, f"publisher failed: {self.error!r}"
        if all_answered:
            assert self.ledger.wait_inflight(0, PUBLISH_TIMEOUT_S), (
                f"{self.ledger.unanswered} messages never answered by the broker")
        for c in self.clients:
            c.disconnect()
            c.loop_stop()
