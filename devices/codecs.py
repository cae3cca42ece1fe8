"""Payload codecs: SenML JSON and CBOR (RFC 8428), The Things Stack v3 uplink
JSON and ChirpStack v4 uplink JSON, all decoded to one shape.

A decoded message is ``(records, errors)``. A record is a plain tuple
``(name, unit, value, time)``: the resolved name (a base name that only
identifies the device, ending in ``:`` or ``/``, is stripped), the unit or
None, the value (float, bool or str as sent), and the time in seconds since
the epoch. An error is ``(index, reason, raw)`` for one bad record of an
otherwise readable pack. A payload that cannot be read at all raises
DecodeError. Tuples, not objects: this runs for every reading on the ingest
hot path.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

import cbor2
import orjson

Record = tuple[str, str | None, float | bool | str, float]
RecordError = tuple[int, str, Any]

# RFC 8428 section 4.5.3: resolved times below 2**28 are relative to "now".
RELATIVE_TIME_LIMIT = 2**28
SENML_VERSION = 10
# RFC 8428 section 6, Table 4: CBOR labels.
CBOR_LABELS = {-1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs", 0: "n", 1: "u",
               2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd"}
_KNOWN_FIELDS = frozenset(CBOR_LABELS.values())


class DecodeError(ValueError):
    """The payload cannot be read at all; the message says what is wrong."""


def _number(value: Any) -> bool:
    return type(value) is float or type(value) is int


def _finite_float(value: Any) -> float | None:
    """The value as a finite float, or None (NaN, infinities, and integers too
    large for a float, which lenient JSON readers return)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return None
    return None


def loads_json(payload: bytes) -> Any:
    """Strict JSON; NaN and Infinity, which strict JSON lacks, are read so that
    only the records holding them are rejected."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise DecodeError(f"malformed JSON: {exc}") from None


def decode_senml_json(payload: bytes, *, now: float) -> tuple[list[Record], list[RecordError]]:
    return resolve_senml(loads_json(payload), now=now)


def decode_senml_cbor(payload: bytes, *, now: float) -> tuple[list[Record], list[RecordError]]:
    try:
        pack = cbor2.loads(payload)
    except Exception as exc:  # noqa: BLE001 - cbor2 raises several kinds on bad input
        raise DecodeError(f"malformed CBOR: {exc}") from None
    if not isinstance(pack, list):
        raise DecodeError("a SenML pack is an array of records")
    records = []
    for rec in pack:
        if isinstance(rec, dict):
            rec = {CBOR_LABELS.get(k, k) if isinstance(k, int) else k: v for k, v in rec.items()}
        records.append(rec)
    return resolve_senml(records, now=now)


def resolve_senml(pack: Any, *, now: float) -> tuple[list[Record], list[RecordError]]:
    """Resolve base fields and relative times of a SenML pack (RFC 8428 section 4.6)."""
    if not isinstance(pack, list) or not pack:
        raise DecodeError("a SenML pack is a non-empty array of records")
    bn, bt, bu, bv = "", 0.0, None, 0.0
    records: list[Record] = []
    errors: list[RecordError] = []
    for i, rec in enumerate(pack):
        if type(rec) is not dict:
            errors.append((i, "a SenML record is an object", rec))
            continue
        if len(rec.keys() - _KNOWN_FIELDS):
            unknown = sorted(str(k) for k in rec.keys() - _KNOWN_FIELDS)
            if any(k.endswith("_") for k in unknown):
                errors.append((i, f"unsupported must-understand field(s) {unknown}", rec))
                continue
        if "bver" in rec and (type(rec["bver"]) is not int or rec["bver"] > SENML_VERSION):
            # One version for the whole pack (RFC 8428 section 4.4).
            raise DecodeError(f"unsupported SenML version {rec['bver']!r} (at most "
                              f"{SENML_VERSION} is understood)")
        try:
            if "bn" in rec:
                bn = _text(rec["bn"], "bn")
            if "bt" in rec:
                bt = _finite(rec["bt"], "bt")
            if "bu" in rec:
                bu = _text(rec["bu"], "bu")
            if "bv" in rec:
                bv = _finite(rec["bv"], "bv")
        except ValueError as exc:
            errors.append((i, str(exc), rec))
            continue
        value: float | bool | str
        if "v" in rec:
            v = rec["v"]
            if not _number(v):
                errors.append((i, f"v must be a number, got {type(v).__name__}", rec))
                continue
            fv = _finite_float(v)
            value = bv + fv if fv is not None else math.nan
            if not math.isfinite(value):
                errors.append((i, "value is NaN, infinite or too large", rec))
                continue
        elif "vb" in rec:
            value = rec["vb"]
            if type(value) is not bool:
                errors.append((i, "vb must be true or false", rec))
                continue
        elif "vs" in rec or "vd" in rec:
            value = rec.get("vs", rec.get("vd"))
            if type(value) is not str:
                errors.append((i, "vs and vd must be strings", rec))
                continue
        elif "s" in rec:
            errors.append((i, "SenML sums (s) are not stored; send the value as v", rec))
            continue
        else:
            continue  # a record holding only base fields
        name = rec.get("n", "")
        if type(name) is not str:
            errors.append((i, "n must be a string", rec))
            continue
        name = name if bn and bn[-1] in ":/" else bn + name
        t = _finite_float(rec.get("t", 0))
        if t is None:
            errors.append((i, "t must be a finite number", rec))
            continue
        t = bt + t
        if t < RELATIVE_TIME_LIMIT:
            t = now + t
        unit = rec.get("u", bu)
        records.append((name, unit, value, t))
    return records, errors


def _text(value: Any, label: str) -> str:
    if type(value) is not str:
        raise ValueError(f"{label} must be a string")
    return value


def _finite(value: Any, label: str) -> float:
    number = _finite_float(value)
    if number is None:
        raise ValueError(f"{label} must be a finite number")
    return number


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: Any) -> float:
    """Seconds since the epoch of an RFC 3339 time (nanoseconds are cut to micro)."""
    if type(text) is not str:
        raise DecodeError(f"time must be an RFC 3339 string, got {text!r}")
    try:
        stamp = datetime.fromisoformat(_FRACTION.sub(r"\1", text))
    except ValueError:
        raise DecodeError(f"time {text!r} is not RFC 3339") from None
    if stamp.tzinfo is None:
        raise DecodeError(f"time {text!r} has no UTC offset")
    return stamp.timestamp()


# In a LoRaWAN uplink's decoded payload: the device's answer to a command
# (devices/downlinks.py), not a metric.
ACK_KEY = "ack"


def _object_records(obj: Any, *, t: float, where: str,
                    acks: list | None) -> tuple[list[Record], list[RecordError]]:
    if not isinstance(obj, dict):
        raise DecodeError(f"{where} must be an object of metric: value")
    records: list[Record] = []
    errors: list[RecordError] = []
    for i, (name, value) in enumerate(obj.items()):
        if name == ACK_KEY and acks is not None:
            acks.append(value)
        elif type(value) is bool:
            records.append((name, None, value, t))
        elif _number(value):
            number = _finite_float(value)
            if number is None:
                errors.append((i, "value is NaN, infinite or too large", {name: value}))
            else:
                records.append((name, None, number, t))
        else:
            errors.append((i, f"{name!r}: value must be a number or boolean", {name: value}))
    return records, errors


def _radio_records(entries: Any, *, t: float, rssi_keys: tuple[str, ...]) -> list[Record]:
    """RSSI (dBm) and SNR (dB) of the gateway that heard the uplink best (the
    highest RSSI) in a network server's metadata list; none when absent. Values
    that are not finite numbers are left out: metadata is the network server's,
    not the device's, and never refuses an uplink."""
    best: tuple[float, float | None] | None = None
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        rssi = next((_finite_float(entry[k]) for k in rssi_keys
                     if _number(entry.get(k))), None)
        if rssi is None or (best is not None and rssi <= best[0]):
            continue
        snr = _finite_float(entry["snr"]) if _number(entry.get("snr")) else None
        best = (rssi, snr)
    if best is None:
        return []
    out: list[Record] = [("rssi", None, best[0], t)]  # in the metrics' own units
    if best[1] is not None:
        out.append(("snr", None, best[1], t))
    return out


def decode_tts_uplink(payload: bytes, *, device_id: str, acks: list | None = None
                      ) -> tuple[list[Record], list[RecordError]]:
    """The Things Stack v3 uplink: metrics from ``uplink_message.decoded_payload``,
    timed by the network server's ``received_at``; an answer to a command
    there (:data:`ACK_KEY`) goes to ``acks`` when given."""
    msg = loads_json(payload)
    if not isinstance(msg, dict) or not isinstance(msg.get("uplink_message"), dict):
        raise DecodeError("not a The Things Stack uplink: no uplink_message object")
    ids = msg.get("end_device_ids") or {}
    if isinstance(ids, dict) and ids.get("device_id") not in (None, device_id):
        raise DecodeError(f"end_device_ids.device_id {ids.get('device_id')!r} "
                          f"does not match the topic's device {device_id!r}")
    up = msg["uplink_message"]
    if "decoded_payload" not in up:
        raise DecodeError("uplink has no decoded_payload: set a payload formatter on the "
                          "device or application in The Things Stack")
    stamp = up.get("received_at") or msg.get("received_at")
    if stamp is None:
        meta = up.get("rx_metadata") or [{}]
        stamp = meta[0].get("time") if isinstance(meta[0], dict) else None
    if stamp is None:
        raise DecodeError("uplink has no received_at time")
    t = parse_time(stamp)
    records, errors = _object_records(up["decoded_payload"], t=t, acks=acks,
                                      where="uplink_message.decoded_payload")
    return records + _radio_records(up.get("rx_metadata"), t=t,
                                    rssi_keys=("rssi", "channel_rssi")), errors


def decode_chirpstack_uplink(payload: bytes, *, dev_eui: str, acks: list | None = None
                             ) -> tuple[list[Record], list[RecordError]]:
    """ChirpStack v4 uplink event (JSON): metrics from ``object``, timed by
    ``time``; an answer to a command there (:data:`ACK_KEY`) goes to ``acks``
    when given."""
    msg = loads_json(payload)
    if not isinstance(msg, dict) or not isinstance(msg.get("deviceInfo"), dict):
        raise DecodeError("not a ChirpStack uplink event: no deviceInfo object")
    eui = str(msg["deviceInfo"].get("devEui", "")).lower()
    if eui != dev_eui:
        raise DecodeError(f"deviceInfo.devEui {eui!r} does not match the topic's {dev_eui!r}")
    if "object" not in msg:
        raise DecodeError("uplink has no decoded object: configure a codec in the ChirpStack "
                          "device profile")
    if "time" not in msg:
        raise DecodeError("uplink has no time")
    t = parse_time(msg["time"])
    records, errors = _object_records(msg["object"], t=t, where="object", acks=acks)
    return records + _radio_records(msg.get("rxInfo"), t=t, rssi_keys=("rssi",)), errors
