"""MQTT clients of the platform's services, made from a URL.

``mqtt://user:password@host:1883`` for plain TCP; ``mqtts://...:8883`` for TLS,
checked against the system's CAs or, with ``?cafile=PATH``, against that CA
(such as the local CA of `agri up --tls`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from paho.mqtt.client import CallbackAPIVersion, Client
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

KEEPALIVE_S = 30
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 10


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool = False
    cafile: str | None = None


def parse_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts:// "
                         f"(got {url.split(':', 1)[0]!r})")
    tls = parts.scheme in ("mqtts", "ssl")
    cafile = parse_qs(parts.query).get("cafile", [None])[0]
    return BrokerAddress(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883),
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None, tls, cafile)


def make_client(url: str, *, client_id: str = "", manual_ack: bool = False) -> Client:
    address = parse_url(url)
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=MQTTProtocolVersion.MQTTv5, manual_ack=manual_ack)
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(ca_certs=address.cafile)
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    client.user_data_set(address)
    return client


def connect_properties(*, session_expiry_s: int | None = None,
                       receive_maximum: int | None = None) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    if session_expiry_s is not None:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


def connect(client: Client, *, clean_start: bool = True, properties: Properties | None = None,
            blocking: bool = True) -> None:
    address: BrokerAddress = client.user_data_get()
    if blocking:
        client.connect(address.host, address.port, KEEPALIVE_S, clean_start=clean_start,
                       properties=properties)
    else:
        client.connect_async(address.host, address.port, KEEPALIVE_S, clean_start=clean_start,
                             properties=properties)
