"""A fast MQTT 3.1.1 QoS 1 publisher for load tests.

paho-mqtt tops out near 10,000 QoS 1 publishes/s per process, and
``mosquitto_pub -l`` (2.0.11) exits at the end of its input before its queued
QoS 1 messages are sent, losing most of a burst. Benchmarks need a generator
that is neither the bottleneck nor lossy, so this one writes PUBLISH packets
in bulk on a plain socket and counts PUBACKs on a reader thread, keeping at
most ``window`` messages unacknowledged (packet ids never wrap onto one still
in flight). MQTT 3.1.1: OASIS standard, sections 3.1-3.4.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterable

CONNECT, CONNACK, PUBLISH_QOS1, PUBACK = 0x10, 0x20, 0x32, 0x40
KEEPALIVE_S = 600
SEND_CHUNK = 256  # packets per sendall
MAX_WINDOW = 30_000  # well below the 65,535 packet ids


class LoadgenError(RuntimeError):
    """The broker refused the connection or broke the protocol."""


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(*, client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)  # clean session
    body = _text("MQTT") + bytes([4, flags]) + struct.pack("!H", KEEPALIVE_S) + _text(client_id)
    if username:
        body += _text(username)
    if password:
        body += _text(password)
    return bytes([CONNECT]) + _remaining_length(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    head = struct.pack("!H", len(topic)) + topic + struct.pack("!H", packet_id)
    return bytes([PUBLISH_QOS1]) + _remaining_length(len(head) + len(payload)) + head + payload


class Publisher:
    """Publish (topic, payload) pairs at QoS 1 as fast as the broker takes them."""

    def __init__(self, *, host: str, port: int, client_id: str, username: str | None,
                 password: str | None, window: int = 10_000, chunk: int | None = None) -> None:
        if not 0 < window <= MAX_WINDOW:
            raise ValueError(f"window must be 1..{MAX_WINDOW}")
        self.window = window
        self.chunk = chunk or SEND_CHUNK  # 1 sends each message at once (paced loads)
        self.sock = socket.create_connection((host, port), timeout=30)
        self.sock.sendall(connect_packet(client_id=client_id, username=username,
                                         password=password))
        ack = self._recv_exact(4)
        if ack[0] != CONNACK or ack[3] != 0:
            raise LoadgenError(f"broker refused the connection (CONNACK {ack.hex()})")
        self.sent = 0
        self.acked = 0
        self._cond = threading.Condition()
        self._error: Exception | None = None
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise LoadgenError("broker closed the connection")
            data += chunk
        return data

    def _read_acks(self) -> None:
        pending = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise LoadgenError("broker closed the connection")
                pending += chunk
                whole = len(pending) // 4 * 4
                packets, pending = pending[:whole], pending[whole:]
                if packets[::4].strip(bytes([PUBACK])):
                    raise LoadgenError("unexpected packet from the broker")
                with self._cond:
                    self.acked += whole // 4
                    self._cond.notify_all()
        except (OSError, LoadgenError) as exc:
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def publish_all(self, messages: Iterable[tuple[bytes, bytes]]) -> int:
        """Send every (topic, payload); returns when all are acknowledged."""
        batch: list[bytes] = []
        for topic, payload in messages:
            self.sent += 1
            batch.append(publish_packet(topic, (self.sent - 1) % 65_535 + 1, payload))
            if len(batch) >= self.chunk:
                self._flush(batch)
        self._flush(batch)
        self._wait(lambda: self.acked >= self.sent)
        return self.acked

    def _flush(self, batch: list[bytes]) -> None:
        if not batch:
            return
        self._wait(lambda: self.sent - self.acked <= self.window)
        self.sock.sendall(b"".join(batch))
        batch.clear()

    def _wait(self, ready) -> None:
        with self._cond:
            while not ready():
                if self._error is not None:
                    raise LoadgenError(f"publishing failed: {self._error}")
                self._cond.wait(30)

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self.sock.close()
