"""MQTT clients of the platform's services, made from an ``mqtt://`` URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

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


def parse_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"MQTT URL must start with mqtt:// (got {url.split(':', 1)[0]!r})")
    return BrokerAddress(parts.hostname or "127.0.0.1", parts.port or 1883,
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None)


def make_client(url: str, *, client_id: str = "", manual_ack: bool = False) -> Client:
    address = parse_url(url)
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=MQTTProtocolVersion.MQTTv5, manual_ack=manual_ack)
    if address.username:
        client.username_pw_set(address.username, address.password)
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
