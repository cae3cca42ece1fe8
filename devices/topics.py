"""The MQTT topic scheme of the device contract.

Every topic the platform publishes or subscribes to is built or parsed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from agri.devices.profiles import profile as find_profile

DEVICE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

SHARE_GROUP = "ingest"


class Format(StrEnum):
    SENML_JSON = "senml"
    SENML_CBOR = "senml-cbor"
    EVENTS = "events"
    ACKS = "acks"
    FLIGHTS = "flights"
    TTS_UPLINK = "tts-uplink"
    CHIRPSTACK_UPLINK = "chirpstack-uplink"


# Subscriptions of ingest (without the shared-subscription prefix).
INGEST_FILTERS: tuple[str, ...] = (
    "agri/v1/devices/+/+",
    "agri/v1/drones/+/flights",
    "v3/+/devices/+/up",
    "application/+/device/+/event/up",
)


# What ingest publishes: commands to devices (devices/commands.py).
INGEST_PUBLISH_FILTERS: tuple[str, ...] = ("agri/v1/devices/+/commands",)


# What the simulator publishes: as devices, and as the LoRaWAN network servers
# (The Things Stack, ChirpStack) that bridge into the broker.
SIMULATOR_PUBLISH_FILTERS: tuple[str, ...] = ("agri/v1/#", "v3/#", "application/#")


def shared(topic_filter: str, group: str = SHARE_GROUP) -> str:
    """The shared-subscription form of a filter, so several workers split the load."""
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class Route:
    """What a topic says: which payload format, and which device sent it.

    ``device`` is the platform device id for native topics and The Things
    Stack (its device id), and the DevEUI for ChirpStack (mapped to a device
    through the registry).
    """

    format: Format
    device: str
    dev_eui: bool = False


def senml_topic(device_id: str, *, cbor: bool = False) -> str:
    return f"agri/v1/devices/{device_id}/{'senml-cbor' if cbor else 'senml'}"


def events_topic(device_id: str) -> str:
    return f"agri/v1/devices/{device_id}/events"


def flights_topic(drone_id: str) -> str:
    return f"agri/v1/drones/{drone_id}/flights"


def commands_topic(device_id: str) -> str:
    """Platform to device; the only topic a device may subscribe to."""
    return f"agri/v1/devices/{device_id}/commands"


def acks_topic(device_id: str) -> str:
    """Device to platform: its answers to commands (devices/commands.py)."""
    return f"agri/v1/devices/{device_id}/acks"


def device_publish_topics(device_id: str, profile: str) -> tuple[str, ...]:
    """Every topic a device of ``profile`` may publish to: its own readings,
    events and answers to commands, and flight records for drones."""
    own = (senml_topic(device_id), senml_topic(device_id, cbor=True), events_topic(device_id),
           acks_topic(device_id))
    return (*own, flights_topic(device_id)) if find_profile(profile).flights else own


def tts_uplink_topic(*, app: str, tenant: str | None, device_id: str) -> str:
    app_part = f"{app}@{tenant}" if tenant else app
    return f"v3/{app_part}/devices/{device_id}/up"


def chirpstack_uplink_topic(*, application_id: str, dev_eui: str) -> str:
    return f"application/{application_id}/device/{dev_eui}/event/up"


_NATIVE = {"senml": Format.SENML_JSON, "senml-cbor": Format.SENML_CBOR, "events": Format.EVENTS,
           "acks": Format.ACKS}


def parse(topic: str) -> Route | None:
    """The route of a topic, or None when the topic is not part of the contract."""
    parts = topic.split("/")
    n = len(parts)
    if n == 5 and parts[0] == "agri" and parts[1] == "v1":
        if parts[2] == "devices" and parts[4] in _NATIVE:
            fmt = _NATIVE[parts[4]]
        elif parts[2] == "drones" and parts[4] == "flights":
            fmt = Format.FLIGHTS
        else:
            return None
        return Route(fmt, parts[3]) if DEVICE_ID_RE.fullmatch(parts[3]) else None
    if n == 5 and parts[0] == "v3" and parts[2] == "devices" and parts[4] == "up":
        return Route(Format.TTS_UPLINK, parts[3]) if DEVICE_ID_RE.fullmatch(parts[3]) else None
    if n == 6 and parts[0] == "application" and parts[2] == "device" and parts[4:] == [
        "event", "up"
    ]:
        eui = parts[3].lower()
        if not _EUI_RE.fullmatch(eui):
            return None
        return Route(Format.CHIRPSTACK_UPLINK, eui, dev_eui=True)
    return None


_EUI_RE = re.compile(r"[0-9a-f]{16}")
