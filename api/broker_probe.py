"""Is the MQTT broker up? One MQTT CONNECT to it, answered by a CONNACK.

The API has no broker account of its own unless ``AGRI_MQTT_URL`` gives it
one; then that account is used. Otherwise the probe connects anonymously to
the broker of the embedded stack: a broker that answers "not authorised" (or
"bad user name or password") is up, it only refuses the probe's account. A
broker that does not accept the connection, closes it without a CONNACK,
answers "server unavailable" or does not answer within PROBE_TIMEOUT_S is
down. The result is kept for CACHE_S so that /healthz stays cheap however
often it is asked.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass

from agri.mqtt import BrokerAddress, parse_url
from agri.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
CACHE_S = 5.0

# CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3).
ACCEPTED = 0
BROKER_UP_BUT_REFUSED = {4: "bad user name or password", 5: "not authorised"}
REFUSED = {1: "unacceptable protocol version", 2: "identifier rejected",
           3: "server unavailable"}


@dataclass(frozen=True, slots=True)
class BrokerState:
    up: bool | None  # None: no broker configured
    detail: str


def broker_address(settings: Settings) -> BrokerAddress | None:
    """The broker the settings name, with the API's own account when
    AGRI_MQTT_URL gives it one; the embedded stack's broker without any
    account; None when there is no broker to check."""
    try:
        url = settings.broker_url("ingest")
    except (SettingsError, OSError):  # no broker named, or a stack file not the API's to read
        return None
    address = parse_url(url)
    if settings.mqtt_url:
        return address
    # Another service's account: not the API's to use.
    return BrokerAddress(address.host, address.port, None, None, address.tls, address.cafile)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(username: str | None, password: str | None) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session, empty client id (the broker names it)."""
    flags = 0x02
    payload = _utf8("")
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    variable = _utf8("MQTT") + bytes([4, flags]) + (10).to_bytes(2, "big")
    body = variable + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


async def probe(address: BrokerAddress, timeout_s: float = PROBE_TIMEOUT_S) -> BrokerState:
    context = ssl.create_default_context(cafile=address.cafile) if address.tls else None
    where = f"{address.host}:{address.port}"
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                address.host, address.port, ssl=context,
                server_hostname=address.host if context else None)
            writer.write(connect_packet(address.username, address.password))
            await writer.drain()
            connack = await reader.readexactly(4)
            if connack[0] != 0x20 or connack[1] != 2:
                return BrokerState(False, f"{where} answered something other than MQTT")
            code = connack[3]
            if code == ACCEPTED:
                writer.write(b"\xe0\x00")  # DISCONNECT
                await writer.drain()
                return BrokerState(True, "ok")
            if code in BROKER_UP_BUT_REFUSED:
                return BrokerState(True, "ok")
            return BrokerState(False, f"{where} refused: {REFUSED.get(code, f'code {code}')}")
    except TimeoutError:
        return BrokerState(False, f"{where} did not answer within {timeout_s:g} s")
    except asyncio.IncompleteReadError:
        return BrokerState(False, f"{where} closed the connection without answering")
    except ssl.SSLError as exc:
        return BrokerState(False, f"{where} TLS failed: {exc.reason or exc}")
    except OSError as exc:
        return BrokerState(False, f"{where} unreachable: {exc.strerror or exc}")
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


class BrokerCheck:
    """The broker's state, probed at most once every CACHE_S."""

    def __init__(self, address: BrokerAddress | None, *, cache_s: float = CACHE_S) -> None:
        self.address = address
        self.cache_s = cache_s
        self._state: BrokerState | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def state(self) -> BrokerState:
        if self.address is None:
            return BrokerState(None, "not configured (set AGRI_MQTT_URL)")
        async with self._lock:
            if self._state is None or time.monotonic() - self._at > self.cache_s:
                self._state = await probe(self.address)
                self._at = time.monotonic()
                if not self._state.up:
                    logger.warning("broker check: %s", self._state.detail)
            return self._state
