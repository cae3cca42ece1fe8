"""What ingest keeps of what it turns away, bounded in size.

A reject row keeps at most PAYLOAD_PREFIX_BYTES of the payload, with the
payload's full size and SHA-256 (so an operator can match it against the
device's own copy), and clipped topic and reason texts. One message yields
at most MAX_ROWS_PER_MESSAGE rows; the records beyond them are counted, per
kind of reason, in one summary row. So a hostile device costs at most a few
hundred kilobytes of rejects per message, however large or bad its packs.
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

# Values inside a reason (quoted text, numbers): removed to name its kind.
_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def clip(text: str, limit: int, *, printable: bool = False) -> str:
    """``text`` cut to ``limit`` characters; with ``printable``, NUL characters
    (which PostgreSQL text cannot hold) written as ``\\x00``."""
    if printable and "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def stored(row: RejectRow, *, printable: bool = False) -> StoredReject:
    """The row as the rejects table keeps it: bounded texts and payload prefix.
    ``printable`` replaces NUL characters in its texts: the writer's second try
    of a batch the database refused."""
    received, topic, device_id, reason, index, payload = row
    return (received, clip(topic, TOPIC_MAX_CHARS, printable=printable),
            None if device_id is None else clip(device_id, TOPIC_MAX_CHARS, printable=printable),
            clip(reason, REASON_MAX_CHARS, printable=printable), index,
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
