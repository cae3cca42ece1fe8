"""Delivery receipts: which of a device's readings are committed.

MQTT acknowledges hop by hop: a PUBACK says the broker took a message, not
that it reached the database, and a broker that crashes loses what it had
acknowledged but not yet delivered. A store-and-forward device therefore
keeps its readings until the platform says they are stored. It asks on its
events topic::

    {"type": "receipt", "times": [1754017200, 1754017800, ...]}

with the measurement times (seconds since 1970, or RFC 3339 text) of the
readings it holds, at most MAX_TIMES of them. Once the batch holding the
request is committed, ingest answers on the device's command topic::

    {"receipt": {"asked": 3, "stored": 2, "committed_until": 1754017800,
                 "missing": [1754018400]}}

``committed_until`` is the latest asked time up to which every asked time
is stored (null when the earliest is not), ``missing`` the asked times with
no stored reading, as the device wrote them. The device deletes what is not
missing and sends the missing readings again: a reading stored twice is
counted as a duplicate, never doubled. A reading still on its way (in
another worker's batch) is reported missing, never stored when it is not.

A time counts as stored when any of the device's readings has that
measurement time (a SenML pack's records share theirs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from agri.devices import codecs

KIND = "receipt"
MAX_TIMES = 1000
EXPIRES_S = 60  # an answer the device did not collect in this time is of no use


class ReceiptError(ValueError):
    """A receipt request that cannot be answered; the message says what to change."""


@dataclass(frozen=True, slots=True)
class Request:
    """The asked times as written (``given``) and in microseconds since 1970."""

    given: tuple[int | float | str, ...]
    micros: tuple[int, ...]


def micros(t: float) -> int:
    """A time in seconds as whole microseconds (the database's resolution)."""
    return round(t * 1_000_000)


def parse_request(body: dict) -> Request:
    """The times of a ``{"type": "receipt", "times": [...]}`` event."""
    times = body.get("times")
    if not isinstance(times, list) or not 1 <= len(times) <= MAX_TIMES:
        raise ReceiptError(f'a receipt request needs "times": a list of 1 to {MAX_TIMES} '
                           f"measurement times")
    given: list[int | float | str] = []
    out: list[int] = []
    for t in times:
        if isinstance(t, str):
            seconds = codecs.parse_time(t)
        elif type(t) in (int, float) and 0 < t < 1e11:
            seconds = float(t)
        else:
            raise ReceiptError(f"receipt time {str(t)[:40]!r} is not seconds since 1970 or "
                               f"RFC 3339 text")
        given.append(t)
        out.append(micros(seconds))
    return Request(tuple(given), tuple(out))


def span(request: Request) -> tuple[datetime, datetime]:
    """The first and last asked time, for the database's range."""
    first, last = min(request.micros), max(request.micros)
    return (datetime.fromtimestamp(first / 1e6, tz=UTC),
            datetime.fromtimestamp(last / 1e6, tz=UTC))


def answer(request: Request, stored: Iterable[int]) -> bytes:
    """The answer to ``request`` given the stored times (microseconds)."""
    have = set(stored)
    order = sorted(range(len(request.micros)), key=request.micros.__getitem__)
    until: int | float | str | None = None
    for i in order:
        if request.micros[i] not in have:
            break
        until = request.given[i]
    missing = [request.given[i] for i in order if request.micros[i] not in have]
    return orjson.dumps({"receipt": {
        "asked": len(request.micros), "stored": len(request.micros) - len(missing),
        "committed_until": until, "missing": missing}})


def parse_answer(payload: bytes) -> dict | None:
    """The receipt of a command-topic message, or None for a command (devices'
    side: a command topic carries commands and receipts)."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    receipt = body.get("receipt") if isinstance(body, dict) else None
    return receipt if isinstance(receipt, dict) else None


def request(times: Sequence[float]) -> bytes:
    """A receipt request for ``times`` (seconds since 1970)."""
    return orjson.dumps({"type": KIND, "times": list(times)})
