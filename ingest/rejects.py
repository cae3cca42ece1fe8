"""What ingest keeps of what it turns away, bounded in size.

A reject row keeps at most PAYLOAD_PREFIX_BYTES of the payload, with the
payload's full size and SHA-256 (so an operator can match it against the
device's own copy), and clipped topic and reason texts. One message yields
at most MAX_ROWS_PER_MESSAGE rows; the records beyond them are counted, per
kind of reason, in one summary row. So a hostile device costs at most a few
hundred kilobytes of rejects per message, however large or bad its packs.

Each stored reason ends with the section of the device developers' guide
that says what it means and what to change (:data:`REASON_CODES`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

import orjson

PAYLOAD_PREFIX_BYTES = 4096
MAX_ROWS_PER_MESSAGE = 20
TOPIC_MAX_CHARS = 512  # MQTT allows 65,535 bytes; contract topics are far shorter
REASON_MAX_CHARS = 1000
SUMMARY_KINDS = 20  # kinds of reason listed in a summary; the rest add up as "other"

# received_at (s), topic, device_id, reason, record index, payload (whole, as received)
RejectRow = tuple[float, str, str | None, str, int | None, bytes]
# What the rejects table stores: the above with the payload's prefix, size and SHA-256.
StoredReject = tuple[float, str, str | None, str, int | None, bytes, int, bytes]

DOC = "docs/device-developers.md"

# Reason code (its section, an anchor of DOC) -> the start of the reasons it
# covers, as ingest, the codecs and the writer word them; the first that
# matches names the reason. tests/test_device_docs.py holds every reason the
# code can give to this table and the table to the guide.
_TIMED = r"(?:device event: |flight record: )?"
REASON_CODES: dict[str, str] = {
    "more-rejected": r"\d+ more records of this message were rejected",
    "topic-not-in-contract": r"topic is not part of the device contract",
    "payload-too-large": r"payload of \d+ bytes exceeds the limit",
    "format-not-in-profile": r"format '.*' is not one the profile ",
    "unknown-device": r"unknown (?:device|DevEUI) ",
    "device-revoked": r"device is revoked",
    "malformed-json": r"malformed JSON",
    "malformed-cbor": r"malformed CBOR",
    "senml-pack": r"a SenML pack is ",
    "senml-version": r"unsupported SenML version",
    "must-understand": r"unsupported must-understand field",
    "senml-field": (r"(?:a SenML record is an object|b?[ntuv] must be |vb must be true or "
                    r"false|vs and vd must be strings)"),
    "not-finite": r"value is NaN, infinite or too large",
    "senml-sum": r"SenML sums \(s\) are not stored",
    "unknown-metric": r"unknown metric ",
    "unit-not-accepted": r"unit .* not accepted for ",
    "wrong-value-kind": r"\w+ takes a number \(v\), not ",
    "outside-physical-range": r"\w+ = .* is outside the physical range ",
    "time-in-milliseconds": _TIMED + r"time -?\d+ looks like milliseconds",
    "time-in-future": _TIMED + r"measurement time is \S+ s ahead of the server clock",
    "time-too-old": _TIMED + r"measurement time is \S+ days old",
    "time-format": (r"(?:time must be an RFC 3339 string|time must be RFC 3339 text or seconds|"
                    r"time .* is not RFC 3339|time .* has no UTC offset)"),
    "lorawan-uplink": (r"(?:not a The Things Stack uplink|not a ChirpStack uplink event|"
                       r"end_device_ids\.device_id .* does not match|"
                       r"deviceInfo\.devEui .* does not match)"),
    "lorawan-decoded": (r"(?:uplink has no decoded|(?:uplink_message\.decoded_payload|object) "
                        r"must be an object of metric: value|'.*': value must be a number "
                        r"or boolean)"),
    "lorawan-time": r"uplink has no (?:received_at )?time",
    "wrong-application": r"wrong LoRaWAN application: ",
    "event-type": r'a device event needs a "type"',
    "receipt-request": r'(?:a receipt request needs "times"|receipt time .* is not seconds)',
    "not-a-json-object": r"a (?:device event|flight record) is a JSON object",
    "flights-only-from-drones": r"flight records are accepted only from drones",
    "flight-kind": r'a flight record needs "kind"',
    "flight-fields": (r'(?:"field" must be a field id|"fields" must be a list of field ids|'
                      r"a flight record names the field)"),
    "unknown-field": r"unknown field ",
    "field-not-served": r"drone .* may not serve field ",
    "could-not-be-decoded": r"could not be decoded \(",
    "database-refused": r"(?:the )?database refused (?:this message|the record)",
    "command-answer": (r"(?:an answer to a command|an answer's|device '.*' has no command|"
                       r"command \d+ is \w+ already)"),
}
_CODE = re.compile("|".join(f"(?P<{code.replace('-', '_')}>{pattern})"
                            for code, pattern in REASON_CODES.items()), re.DOTALL)


def reason_code(reason: str) -> str | None:
    """The code of ``reason`` (its section in DOC), or None for a reason not
    worded by ingest."""
    match = _CODE.match(reason)
    return match.lastgroup.replace("_", "-") if match else None


def doc_link(code: str) -> str:
    return f"{DOC}#{code}"


# Values inside a reason (quoted text, numbers): removed to name its kind.
_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def clip(text: str, limit: int, *, printable: bool = False) -> str:
    """``text`` cut to ``limit`` characters; with ``printable``, NUL characters
    (which PostgreSQL text cannot hold) written as ``\\x00``."""
    if printable and "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def stored(row: RejectRow, *, printable: bool = False) -> StoredReject:
    """The row as the rejects table keeps it: bounded texts, the reason with its
    section of the guide, and the payload prefix.
    ``printable`` replaces NUL characters in its texts: the writer's second try
    of a batch the database refused."""
    received, topic, device_id, reason, index, payload = row
    code = reason_code(reason)
    see = f" (see {doc_link(code)})" if code else ""
    return (received, clip(topic, TOPIC_MAX_CHARS, printable=printable),
            None if device_id is None else clip(device_id, TOPIC_MAX_CHARS, printable=printable),
            clip(reason, REASON_MAX_CHARS - len(see), printable=printable) + see, index,
            payload[:PAYLOAD_PREFIX_BYTES], len(payload), hashlib.sha256(payload).digest())


def kind(reason: str) -> str:
    """A reason without its values: what records rejected for the same cause share."""
    return _VALUES.sub("…", reason)


def record_rejects(*, received: float, topic: str, device_id: str | None,
                   errors: Iterable[tuple[int | None, str, object]]) -> list[RejectRow]:
    """Rows for the bad records ``(index, reason, record)`` of one message: the
    first MAX_ROWS_PER_MESSAGE one by one, then one summary of the rest."""
    rows: list[RejectRow] = []
    rest: Counter[str] = Counter()
    for index, reason, raw in errors:
        if len(rows) < MAX_ROWS_PER_MESSAGE:
            rows.append((received, topic, device_id, reason, index,
                         orjson.dumps(raw, default=str)))
        else:
            rest[kind(reason)[:REASON_MAX_CHARS]] += 1
    if rest:
        rows.append(summary(received=received, topic=topic, device_id=device_id, rest=rest))
    return rows


def summary(*, received: float, topic: str, device_id: str | None,
            rest: Counter[str]) -> RejectRow:
    """One row saying how many more records of a message were rejected, and why."""
    total = sum(rest.values())
    counts = dict(rest.most_common(SUMMARY_KINDS))
    if len(rest) > SUMMARY_KINDS:
        counts["other"] = total - sum(counts.values())
    listed = "; ".join(f"{n} x {k}" for k, n in counts.items())
    reason = (f"{total} more records of this message were rejected (only the first "
              f"{MAX_ROWS_PER_MESSAGE} are kept one by one): {listed}")
    body = orjson.dumps({"more_rejected": total, "reasons": counts})
    return (received, topic, device_id, reason, None, body)
