"""Commands to LoRaWAN devices, as downlinks through their bridge.

A device behind a bridge (devices/bridges.py) has no MQTT connection of its
own: its command goes to the bridge's network server, on the downlink topic
and in the JSON its MQTT integration documents, which queues it for the
device (a class A device receives it after its next uplink). The command is
the same object as on a device's own command topic (devices/commands.py
``message``), given as the decoded payload on the profile's FPort
(``downlink_port``): the network server's payload formatter (The Things
Stack) or codec (ChirpStack) of the device type encodes it to bytes, as it
decodes the device's uplinks.

- The Things Stack: ``v3/{app}[@{tenant}]/devices/{device_id}/down/push`` with
  ``{"downlinks": [{"f_port", "decoded_payload", "priority", "confirmed",
  "correlation_ids"}]}`` (Integrations, MQTT Server: scheduling downlinks).
- ChirpStack v4: ``application/{application_id}/device/{dev_eui}/command/down``
  with ``{"id", "devEui", "confirmed", "fPort", "object"}`` (the integration's
  DownlinkCommand in its JSON form; ``object`` when a codec is configured).

The device's answer comes back in an uplink whose decoded payload holds
``"ack": {"id", "status", "reason"}`` (devices/codecs.py ``ACK_KEY``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from agri.devices import topics

# Fixed, so that a resent command keeps the id ChirpStack shows for it.
CHIRPSTACK_ID_NAMESPACE = uuid.UUID("6f1f8f0e-2b8c-4c59-9a53-4a4c1b7d0c21")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a bridged device's downlinks go: its bridge's kind and application."""

    kind: str  # "tts" or "chirpstack" (devices/bridges.py KINDS)
    application: str
    tenant: str | None


def downlink(route: Route, *, device_id: str, dev_eui: str | None, port: int,
             command_id: int, command: Mapping) -> tuple[str, bytes]:
    """(topic, payload) of one command to a device behind a bridge; ``command``
    is the object of devices/commands.py ``command_object``."""
    if route.kind == "tts":
        topic = topics.tts_downlink_topic(app=route.application, tenant=route.tenant,
                                          device_id=device_id)
        return topic, orjson.dumps({"downlinks": [{
            "f_port": port, "decoded_payload": dict(command), "priority": "NORMAL",
            "confirmed": False, "correlation_ids": [f"agri:command:{command_id}"]}]})
    if dev_eui is None:
        raise ValueError(f"device {device_id!r} has no DevEUI: ChirpStack addresses by DevEUI")
    topic = topics.chirpstack_downlink_topic(application_id=route.application, dev_eui=dev_eui)
    return topic, orjson.dumps({
        "id": str(uuid.uuid5(CHIRPSTACK_ID_NAMESPACE, str(command_id))), "devEui": dev_eui,
        "confirmed": False, "fPort": port, "object": dict(command)})
