"""The path of one message: topic -> device -> codec -> validation -> batch.

Nothing here raises for bad input: whatever cannot be stored becomes a
reject with its reason, and the good records of a partly bad pack are kept.
"""

from __future__ import annotations

import logging
import math

import orjson

from agri.devices import codecs
from agri.devices.topics import Format, Route, parse
from agri.ingest.batch import Batch
from agri.ingest.directory import Directory
from agri.ingest.validate import TimeLimits, validate

logger = logging.getLogger(__name__)

READING_FORMATS = {Format.SENML_JSON, Format.SENML_CBOR, Format.TTS_UPLINK,
                   Format.CHIRPSTACK_UPLINK}


class Pipeline:
    def __init__(self, *, directory: Directory, limits: TimeLimits, max_payload: int) -> None:
        self.directory = directory
        self.limits = limits
        self.max_payload = max_payload

    def handle(self, topic: str, payload: bytes, received: float, batch: Batch) -> None:
        """Decode and check one message into ``batch``."""
        batch.messages += 1
        if len(payload) > self.max_payload:
            return _reject(batch, received, topic, None,
                           f"payload of {len(payload)} bytes exceeds the limit of "
                           f"{self.max_payload} bytes", payload)
        route = parse(topic)
        if route is None:
            return _reject(batch, received, topic, None, "topic is not part of the device "
                           "contract (see DESIGN.md, MQTT topics)", payload)
        device = self.directory.lookup(route.device, dev_eui=route.dev_eui)
        device_id = device.id if device else (None if route.dev_eui else route.device)
        if device is None:
            what = "DevEUI" if route.dev_eui else "device"
            return _reject(batch, received, topic, device_id,
                           f"unknown {what} {route.device!r}: register it with "
                           f"`agri devices add`", payload)
        if device.revoked:
            return _reject(batch, received, topic, device_id, "device is revoked", payload)
        try:
            if route.format in READING_FORMATS:
                records, errors = _decode(route, payload, received)
                rows, bad = validate(records, device_id=device.id, profile=device.profile,
                                     metrics=device.metrics, received=received,
                                     limits=self.limits)
                batch.rows.extend(rows)
                for index, reason, raw in (*errors, *bad):
                    _reject(batch, received, topic, device_id, reason,
                            orjson.dumps(raw, default=str), index)
            elif route.format is Format.EVENTS:
                batch.events.append(_event(device.id, payload, received))
            else:
                batch.flights.append(_flight(device.id, payload, received))
        except codecs.DecodeError as exc:
            _reject(batch, received, topic, device_id, str(exc), payload)
        except Exception as exc:  # noqa: BLE001 - nothing from a device may stop ingest
            logger.exception("unexpected error decoding a message on %s", topic)
            _reject(batch, received, topic, device_id,
                    f"could not be decoded ({type(exc).__name__}: {exc})", payload)


def _decode(route: Route, payload: bytes, received: float):
    match route.format:
        case Format.SENML_JSON:
            return codecs.decode_senml_json(payload, now=received)
        case Format.SENML_CBOR:
            return codecs.decode_senml_cbor(payload, now=received)
        case Format.TTS_UPLINK:
            return codecs.decode_tts_uplink(payload, device_id=route.device)
        case _:
            return codecs.decode_chirpstack_uplink(payload, dev_eui=route.device)


def _reject(batch: Batch, received: float, topic: str, device_id: str | None, reason: str,
            payload: bytes, index: int | None = None) -> None:
    batch.rejects.append((received, topic, device_id, reason, index, payload))


def _json_object(payload: bytes, what: str) -> dict:
    body = codecs.loads_json(payload)
    if not isinstance(body, dict):
        raise codecs.DecodeError(f"a {what} is a JSON object")
    return body


def _time_of(body: dict, received: float) -> float:
    t = body.get("time", body.get("t"))
    if t is None:
        return received
    if isinstance(t, str):
        return codecs.parse_time(t)
    if type(t) in (int, float) and math.isfinite(t) and 0 < t < 1e11:
        return float(t)
    raise codecs.DecodeError("time must be RFC 3339 text or seconds since 1970")


def _event(device_id: str, payload: bytes, received: float):
    body = _json_object(payload, "device event")
    kind = body.get("type") or body.get("kind")
    if not isinstance(kind, str) or not kind:
        raise codecs.DecodeError("a device event needs a \"type\" (boot, battery, fault, ...)")
    return (device_id, _time_of(body, received), kind, orjson.dumps(body).decode(), received)


def _flight(drone_id: str, payload: bytes, received: float):
    body = _json_object(payload, "flight record")
    kind = body.get("kind")
    if kind not in ("survey", "spray"):
        raise codecs.DecodeError("a flight record needs \"kind\": \"survey\" or \"spray\"")
    field_id = body.get("field")
    if field_id is not None and not isinstance(field_id, str):
        raise codecs.DecodeError("\"field\" must be a field id")
    t = _time_of({"time": body.get("started_at", body.get("time"))}, received)
    return (drone_id, t, kind, field_id, orjson.dumps(body).decode(), received)
