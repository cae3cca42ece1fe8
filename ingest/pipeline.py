"""The path of one message: topic -> device -> codec -> validation -> batch.

Nothing here raises for bad input: whatever cannot be stored becomes a
reject with its reason (bounded, see ``ingest/rejects.py``), and the good
records of a partly bad pack are kept.
"""

from __future__ import annotations

import logging

import orjson

from agri.devices import codecs, commands, receipts
from agri.devices.topics import Format, Route, parse
from agri.ingest import rejects
from agri.ingest.batch import Batch
from agri.ingest.directory import Directory, KnownDevice
from agri.ingest.validate import TimeLimits, time_problem, validate

logger = logging.getLogger(__name__)

READING_FORMATS = {Format.SENML_JSON, Format.SENML_CBOR, Format.TTS_UPLINK,
                   Format.CHIRPSTACK_UPLINK}


LORAWAN_FORMATS = {Format.TTS_UPLINK, Format.CHIRPSTACK_UPLINK}
LORAWAN_NAMES = {Format.TTS_UPLINK: "The Things Stack", Format.CHIRPSTACK_UPLINK: "ChirpStack"}


# Numeric record times at or above this are not read at all (an int that large
# does not fit a float); anything above MILLISECONDS_THRESHOLD is refused anyway.
TIME_LIMIT = 1e18


class Refused(ValueError):
    """A readable message the platform does not accept; the message says why."""


class Pipeline:
    def __init__(self, *, directory: Directory, limits: TimeLimits, max_payload: int,
                 command_log: commands.CommandLog) -> None:
        self.directory = directory
        self.limits = limits
        self.max_payload = max_payload
        self.command_log = command_log

    def handle(self, topic: str, payload: bytes, received: float, batch: Batch) -> None:
        """Decode and check one message into ``batch``."""
        batch.messages += 1
        device_id = self._handle(topic, payload, received, batch)
        batch.end_message((received, topic, device_id, payload))

    def _handle(self, topic: str, payload: bytes, received: float, batch: Batch) -> str | None:
        """Returns the sending device's id when known."""
        route = parse(topic)
        if route is None:
            _reject(batch, received, topic, None, "topic is not part of the device contract "
                    "(agri/v1/devices/{id}/senml, senml-cbor or events; "
                    "agri/v1/drones/{id}/flights; a LoRaWAN network server's uplink)", payload)
            return None
        if len(payload) > self.max_payload:
            # Before any lookup: the device id of a native topic is the sender's.
            device_id = None if route.dev_eui else route.device
            _reject(batch, received, topic, device_id,
                    f"payload of {len(payload)} bytes exceeds the limit of "
                    f"{self.max_payload} bytes", payload)
            return device_id
        device = self.directory.lookup(route.device, dev_eui=route.dev_eui)
        device_id = device.id if device else (None if route.dev_eui else route.device)
        if device is None:
            what = "DevEUI" if route.dev_eui else "device"
            _reject(batch, received, topic, device_id,
                    f"unknown {what} {route.device!r}: register it with `agri devices add`",
                    payload)
            return device_id
        if device.revoked:
            _reject(batch, received, topic, device_id, "device is revoked", payload)
            return device_id
        if device.bridge is None and route.format in LORAWAN_FORMATS:
            # Else any network server's account could write any device's readings.
            _reject(batch, received, topic, device_id,
                    f"wrong LoRaWAN application: device {device.id!r} is behind no bridge, "
                    f"so no network server may send its uplinks (this one came through "
                    f"{LORAWAN_NAMES[route.format]} application {route.application!r}): "
                    f"attach the device to that application's bridge (agri bridges attach)",
                    payload)
            return device_id
        if device.bridge is not None and route.format in LORAWAN_FORMATS and \
                device.bridge[1:] != (route.format, route.application):
            name, fmt, application = device.bridge
            _reject(batch, received, topic, device_id,
                    f"wrong LoRaWAN application: device {device.id!r} belongs to "
                    f"{LORAWAN_NAMES[fmt]} application {application!r} (bridge {name!r}), "
                    f"this uplink came through {LORAWAN_NAMES[route.format]} application "
                    f"{route.application!r}: attach the device to that application's bridge "
                    f"(agri bridges attach), or move it to its own application in the "
                    f"network server", payload)
            return device_id
        if route.format is not Format.FLIGHTS and route.format not in device.profile.formats:
            # (flight records from other devices get their own reason below)
            _reject(batch, received, topic, device_id,
                    f"format {route.format.value!r} is not one the profile "
                    f"{device.profile.name!r} sends ({', '.join(device.profile.formats)}): "
                    f"send one of those, or add it to the profile's formats", payload)
            return device_id
        try:
            if route.format in READING_FORMATS:
                acks: list = []
                records, errors = _decode(route, payload, received, acks)
                rows, bad = validate(records, device_id=device.id, profile=device.profile,
                                     metrics=device.metrics, received=received,
                                     limits=self.limits)
                batch.rows.extend(rows)
                if errors or bad:
                    batch.rejects += rejects.record_rejects(
                        received=received, topic=topic, device_id=device_id,
                        errors=[*errors, *bad])
                for ack in acks:  # a LoRaWAN device's answer, in its uplink
                    self.command_log.record(device.id, commands.ack_of(ack))
            elif route.format is Format.EVENTS:
                body = _json_object(payload, "device event")
                if body.get("type") == receipts.KIND:
                    # Answered once the batch is committed (ingest/service.py).
                    batch.receipts.append((device.id, receipts.parse_request(body)))
                else:
                    batch.events.append(self._event(device, body, received))
            elif route.format is Format.ACKS:
                # Recorded at once (idempotent): the message is acknowledged
                # only after its batch commits, so a lost answer comes again.
                self.command_log.record(device.id, commands.parse_ack(payload))
            else:
                batch.flights.append(self._flight(device, payload, received))
        except (codecs.DecodeError, Refused, commands.AckError,
                receipts.ReceiptError) as exc:
            _reject(batch, received, topic, device_id, str(exc), payload)
        except Exception as exc:  # noqa: BLE001 - nothing from a device may stop ingest
            logger.exception("unexpected error decoding a message on %s", topic[:200])
            _reject(batch, received, topic, device_id,
                    f"could not be decoded ({type(exc).__name__}: {exc})", payload)
        return device_id

    def _time(self, body: dict, received: float, what: str) -> float:
        t = _time_of(body, received)
        problem = time_problem(t, received=received, limits=self.limits)
        if problem:
            raise Refused(f"{what}: {problem}")
        return t

    def _event(self, device: KnownDevice, body: dict, received: float):
        kind = body.get("type") or body.get("kind")
        if not isinstance(kind, str) or not kind:
            raise codecs.DecodeError("a device event needs a \"type\" (boot, battery, fault, ...)")
        t = self._time(body, received, "device event")
        return (device.id, t, kind, orjson.dumps(body).decode(), received)

    def _flight(self, drone: KnownDevice, payload: bytes, received: float):
        """A drone's flight record, for fields the drone may serve: the field
        it is registered to, fields of its owner, or fields in the
        municipalities its owner serves (a contractor's regions)."""
        if not drone.profile.flights:
            raise Refused(f"flight records are accepted only from drones; device {drone.id!r} "
                          f"has profile {drone.profile.name!r}")
        body = _json_object(payload, "flight record")
        kind = body.get("kind")
        if kind not in ("survey", "spray"):
            raise codecs.DecodeError("a flight record needs \"kind\": \"survey\" or \"spray\"")
        field_id = body.get("field")
        if field_id is not None and not isinstance(field_id, str):
            raise codecs.DecodeError("\"field\" must be a field id")
        named = body.get("fields", [])
        if not isinstance(named, list) or not all(isinstance(f, str) for f in named):
            raise codecs.DecodeError("\"fields\" must be a list of field ids")
        served = ([field_id] if field_id is not None else []) + named
        if not served:
            raise Refused("a flight record names the field it served (\"field\") or fields "
                          "(\"fields\")")
        for f in served:
            known = self.directory.field(f)
            if known is None:
                raise Refused(f"unknown field {f[:80]!r}: import it with `agri fields import`")
            owner, municipality = known
            if f != drone.field_id and (drone.owner is None or (
                    owner != drone.owner and municipality not in drone.owner_regions)):
                raise Refused(f"drone {drone.id!r} may not serve field {f!r}: register it to "
                              f"that field (--field), to the field's owner (--owner), or to a "
                              f"contractor whose regions include {municipality}")
        t = self._time({"time": body.get("started_at", body.get("time"))}, received,
                       "flight record")
        return (drone.id, t, kind, field_id, orjson.dumps(body).decode(), received)


def _decode(route: Route, payload: bytes, received: float, acks: list | None = None):
    match route.format:
        case Format.SENML_JSON:
            return codecs.decode_senml_json(payload, now=received)
        case Format.SENML_CBOR:
            return codecs.decode_senml_cbor(payload, now=received)
        case Format.TTS_UPLINK:
            return codecs.decode_tts_uplink(payload, device_id=route.device, acks=acks)
        case _:
            return codecs.decode_chirpstack_uplink(payload, dev_eui=route.device, acks=acks)


def _reject(batch: Batch, received: float, topic: str, device_id: str | None, reason: str,
            payload: bytes) -> None:
    batch.rejects.append((received, topic, device_id, reason, None, payload))


def _json_object(payload: bytes, what: str) -> dict:
    body = codecs.loads_json(payload)
    if not isinstance(body, dict):
        raise codecs.DecodeError(f"a {what} is a JSON object")
    return body


def _time_of(body: dict, received: float) -> float:
    """The record's time: RFC 3339 text or seconds since 1970 (the arrival time
    when it has none); its limits are checked by the caller."""
    t = body.get("time", body.get("t"))
    if t is None:
        return received
    if isinstance(t, str):
        return codecs.parse_time(t)
    if type(t) in (int, float) and 0 < t < TIME_LIMIT:
        return float(t)
    raise codecs.DecodeError("time must be RFC 3339 text or seconds since 1970")
