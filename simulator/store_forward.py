"""A store-and-forward device: it keeps every reading until the platform's
delivery receipt says it is stored (devices/receipts.py).

It publishes each SenML pack at once (QoS 1) and keeps it in its buffer; a
PUBACK does not free it, since a broker that dies loses what it had taken but
not yet delivered. :meth:`StoreAndForward.settle` asks for a receipt of the
buffered times, deletes what the answer says is stored and publishes the
missing packs again, until the buffer is empty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import orjson

from agri import mqtt
from agri.devices import receipts
from agri.devices.topics import commands_topic, events_topic, senml_topic

ASK_EVERY_S = 2.0  # a receipt not answered within this is asked for again
MAX_INFLIGHT = 500


class StoreAndForward:
    """One device on its own MQTT connection (``url`` carries its credentials)."""

    def __init__(self, url: str, device_id: str) -> None:
        self.device_id = device_id
        self.buffer: dict[float, bytes] = {}  # measurement time -> its pack
        self.resent = 0  # packs published again because a receipt named them missing
        self._lock = threading.Lock()
        self._answered = threading.Event()
        self._asked: Sequence[float] = ()  # the times of the receipt last asked for
        self._sent: list = []  # publishes of measure() not yet acknowledged
        self.client = mqtt.make_client(url, client_id=device_id)
        self.client.max_inflight_messages_set(MAX_INFLIGHT)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def __enter__(self) -> StoreAndForward:
        mqtt.connect(self.client, clean_start=False,
                     properties=mqtt.connect_properties(session_expiry_s=3600))
        self.client.loop_start()
        return self

    def __exit__(self, *exc) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            client.subscribe(commands_topic(self.device_id), qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        receipt = receipts.parse_answer(msg.payload)
        if receipt is None:
            return  # a command: this device answers none
        missing = set(receipt.get("missing") or [])
        asked = self._asked
        with self._lock:
            for t in asked:
                if t not in missing:
                    self.buffer.pop(t, None)
        self._answered.set()

    def measure(self, t: float, values: dict[str, float]) -> None:
        """Record one pack measured at ``t`` and send it."""
        pack = orjson.dumps([{"bn": f"{self.device_id}:", "bt": t},
                             *({"n": n, "v": v} for n, v in values.items())])
        with self._lock:
            self.buffer[t] = pack
        self._sent.append(self.client.publish(senml_topic(self.device_id), pack, qos=1))

    def acknowledged(self) -> bool:
        """Whether the broker acknowledged (PUBACK) every pack sent by measure()."""
        self._sent = [info for info in self._sent if not info.is_published()]
        return not self._sent

    def settle(self, timeout_s: float = 60.0) -> bool:
        """Ask for receipts and send missing packs again until the buffer is
        empty (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        first = True
        while time.monotonic() < deadline:
            with self._lock:
                held = sorted(self.buffer)[:receipts.MAX_TIMES]
            if not held:
                return True
            if not first:
                # Named missing last time: send again (a stored one is a duplicate).
                for t in held:
                    self.client.publish(senml_topic(self.device_id), self.buffer[t], qos=1)
                self.resent += len(held)
            first = False
            self._asked = held
            self._answered.clear()
            self.client.publish(events_topic(self.device_id), receipts.request(held), qos=1)
            self._answered.wait(ASK_EVERY_S)
            if not self._answered.is_set():
                first = True  # no answer yet (the broker or ingest is away): ask again
        return not self.buffer
