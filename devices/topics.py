"""The MQTT topic scheme of the device contract.

Every topic the platform publishes or subscribes to is built or parsed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
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


# Subscriptions of ingest (without the shared-subscription prefix). One filter a
# format, never agri/v1/devices/+/+: that one also matched the command topics,
# so every command ingest published came back to ingest as a reject.
INGEST_FILTERS: tuple[str, ...] = (
    *(f"agri/v1/devices/+/{f.value}" for f in (Format.SENML_JSON, Format.SENML_CBOR,
                                              Format.EVENTS, Format.ACKS)),
    "agri/v1/drones/+/flights",
    "v3/+/devices/+/up",
    "application/+/device/+/event/up",
)
# Filters of earlier versions that a worker's persistent session may still hold;
# dropped when it connects.
FORMER_INGEST_FILTERS: tuple[str, ...] = ("agri/v1/devices/+/+",)


# What ingest publishes: commands to devices (devices/commands.py), and to
# LoRaWAN devices as downlinks through their bridge (devices/downlinks.py).
INGEST_PUBLISH_FILTERS: tuple[str, ...] = (
    "agri/v1/devices/+/commands", "v3/+/devices/+/down/push",
    "application/+/device/+/command/down")


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
    # The LoRaWAN application the uplink came through, as the topic names it:
    # "app@tenant" or "app" for The Things Stack, the UUID for ChirpStack (not
    # part of a route's identity: which device and format it is).
    application: str | None = field(default=None, compare=False)


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


def tts_application(app: str, tenant: str | None) -> str:
    """How a The Things Stack topic names an application: ``app@tenant`` or ``app``."""
    return f"{app}@{tenant}" if tenant else app


def tts_uplink_topic(*, app: str, tenant: str | None, device_id: str) -> str:
    return f"v3/{tts_application(app, tenant)}/devices/{device_id}/up"


def tts_downlink_topic(*, app: str, tenant: str | None, device_id: str) -> str:
    return f"v3/{tts_application(app, tenant)}/devices/{device_id}/down/push"


def chirpstack_uplink_topic(*, application_id: str, dev_eui: str) -> str:
    return f"application/{application_id}/device/{dev_eui}/event/up"


def chirpstack_downlink_topic(*, application_id: str, dev_eui: str) -> str:
    return f"application/{application_id}/device/{dev_eui}/command/down"


# What a LoRaWAN network server bridging one application (devices/bridges.py)
# may publish (its uplinks) and subscribe to (its downlinks).
def tts_bridge_filters(app: str, tenant: str | None) -> tuple[str, str]:
    """(uplink filter, downlink filter) of one The Things Stack application."""
    return (tts_uplink_topic(app=app, tenant=tenant, device_id="+"),
            tts_downlink_topic(app=app, tenant=tenant, device_id="+"))


def chirpstack_bridge_filters(application_id: str) -> tuple[str, str]:
    """(uplink filter, downlink filter) of one ChirpStack application."""
    return (chirpstack_uplink_topic(application_id=application_id, dev_eui="+"),
            chirpstack_downlink_topic(application_id=application_id, dev_eui="+"))


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
        if not DEVICE_ID_RE.fullmatch(parts[3]):
            return None
        return Route(Format.TTS_UPLINK, parts[3], application=parts[1])
    if n == 6 and parts[0] == "application" and parts[2] == "device" and parts[4:] == [
        "event", "up"
    ]:
        eui = parts[3].lower()
        if not _EUI_RE.fullmatch(eui):
            return None
        return Route(Format.CHIRPSTACK_UPLINK, eui, dev_eui=True, application=parts[1])
    return None


_EUI_RE = re.compile(r"[0-9a-f]{16}")
