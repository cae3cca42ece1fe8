"""What the simulated devices and drones put on the wire, and what ingest should make of it.

Wire formats: MQTT topic and payload of each message, as real devices and LoRaWAN network
servers send them.

- SenML pack, JSON or CBOR (RFC 8428, the platform's CBOR labels), LTE-M devices: base name
  ``URN`` + device id (stripped on ingest), base time of the first transmission, later ones
  relative to it; a paddy sensor may send the level in cm.
- The Things Stack v3 uplink: ``decoded_payload`` of one transmission, stamped by the
  gateway and the network server.
- ChirpStack v4 uplink event: ``object`` of one transmission, ``data`` the values as
  float32, addressed by DevEUI.
- Drone flight record: the record's JSON object on ``agri/v1/drones/{drone_id}/flights``,
  ``started_at``/``ended_at`` in ISO 8601 with the +09:00 offset, published when the drone
  has landed. :class:`FlightLog` holds a season's records as its drones publish them.

Each message comes with its :class:`Meta`: what ingest should make of it; a
:class:`Summary` adds the Metas of a run up into counts that reconcile with the database.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import cbor2
import numpy as np
import orjson

from agri.analytics.agronomy import PREFECTURE_HEADING_END
from agri.devices.codecs import CBOR_LABELS
from agri.devices.profiles import METRICS
from agri.devices.topics import (
    chirpstack_uplink_topic,
    flights_topic,
    senml_topic,
    tts_uplink_topic,
)
from agri.simulator import drones
from agri.simulator.season import SURVEY_DAYS_FROM_HEADING

if TYPE_CHECKING:
    from agri.ingest.batch import FlightRow
    from agri.ingest.validate import TimeLimits
    from agri.simulator.season import Season

TTS_APP, TTS_TENANT, GATEWAY = "aomori-paddies", "ttn", "sim-gateway-1"
CHIRPSTACK_APP = "3f6c2a9e-5b1d-4c8e-9a7f-2d4b6e8c0a1f"
URN = "urn:dev:sim:"  # SenML base name: identifies the device only (stripped on ingest)
FLIGHT_REPORT_S = 60.0  # a drone publishes its flight record this long after landing
SURVEY_DRONE = "survey-01"  # as in the season's survey records
SURVEY_START_MIN = 90  # a survey day starts within this many minutes after SURVEY_HOUR
SURVEY_TURNAROUND_S = 600.0  # between the blocks of one survey day
_SURVEYS = 4  # random stream key (after those of the sensors)
_LABEL = {name: label for label, name in CBOR_LABELS.items()}
Reading = tuple[str, float, float, bool]  # metric, time (s), value (canonical unit), in range
Flight = tuple[str, float, str | None]  # kind, start time (s), field id
# A transmission: device time (s), [(metric, value as sent, in range, spiked)].
Slot = tuple[float, list[tuple[str, float, bool, bool]]]


class Transport(StrEnum):
    SENML = "senml"
    SENML_CBOR = "senml-cbor"
    TTS = "tts"
    CHIRPSTACK = "chirpstack"


@dataclass(frozen=True, slots=True)
class Device:
    """A simulated sensor: how it sends, and its reporting grid."""

    id: str
    profile: str
    field: str  # the field it stands in
    transport: Transport
    dev_eui: str | None  # ChirpStack devices only
    phase_s: int  # its reporting grid: times = phase_s (mod base_s)
    base_s: int  # shortest interval of its profile: one message each
    level_unit: str = "m"


@dataclass(frozen=True, slots=True)
class Meta:
    """What a message carries, as ingest should see it (times stamped, values canonical)."""

    device: str
    publish_s: float
    readings: tuple[Reading, ...]
    spikes: int = 0
    duplicate: bool = False  # the second publish of a message
    flush: bool = False  # part of a store-and-forward burst
    flight: Flight | None = None  # a drone flight record (no readings)

    @property
    def bad(self) -> int:
        """Readings beyond the physical range (rejected by ingest)."""
        return sum(not r[3] for r in self.readings)


Message = tuple[str, bytes, Meta]


# -- wire formats -------------------------------------------------------------------------
def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def transmission(dev: Device, slots: list[Slot], publish_s: float, *, duplicate: bool = False,
                 delay_s: float = 0.0, flush: bool = False) -> list[Message]:
    """The message of ``slots``, and its exact copy ``delay_s`` later when ``duplicate``."""
    readings = tuple((m, t, v / 100.0 if m == "water_level" and dev.level_unit == "cm"
                      else v, ok) for t, records in slots for m, v, ok, _ in records)
    spikes = sum(spike for _, records in slots for *_, spike in records)
    topic, payload = _ENCODERS[dev.transport](dev, slots, publish_s)
    meta = Meta(dev.id, publish_s, readings, spikes, flush=flush)
    if not duplicate:
        return [(topic, payload, meta)]
    again = Meta(dev.id, publish_s + delay_s, readings, spikes, duplicate=True, flush=flush)
    return [(topic, payload, meta), (topic, payload, again)]


def _tts(dev: Device, slots: list[Slot], publish_s: float) -> tuple[str, bytes]:
    """The Things Stack v3 uplink: one transmission, timed by the network server."""
    (t, records), = slots
    return tts_uplink_topic(app=TTS_APP, tenant=TTS_TENANT, device_id=dev.id), orjson.dumps({
        "end_device_ids": {"device_id": dev.id, "application_ids": {"application_id": TTS_APP}},
        "received_at": rfc3339(publish_s),
        "uplink_message": {"f_port": 2, "decoded_payload": {m: v for m, v, *_ in records},
                           "rx_metadata": [{"gateway_ids": {"gateway_id": GATEWAY},
                                            "time": rfc3339(t)}],
                           "received_at": rfc3339(t)}})


def _chirpstack(dev: Device, slots: list[Slot], publish_s: float) -> tuple[str, bytes]:
    """ChirpStack v4 uplink event: one transmission; ``data`` holds the values as float32."""
    (t, records), = slots
    dedup = uuid.UUID(bytes=hashlib.sha256(f"{dev.id}/{t}".encode()).digest()[:16])
    values = np.array([v for _, v, *_ in records], ">f4").tobytes()
    return chirpstack_uplink_topic(application_id=CHIRPSTACK_APP, dev_eui=dev.dev_eui), \
        orjson.dumps({"deduplicationId": str(dedup), "time": rfc3339(t),
                      "deviceInfo": {"applicationId": CHIRPSTACK_APP, "applicationName": TTS_APP,
                                     "deviceProfileName": dev.profile, "deviceName": dev.id,
                                     "devEui": dev.dev_eui},
                      "fPort": 2, "data": base64.b64encode(values).decode(),
                      "object": {m: v for m, v, *_ in records}})


def _senml(dev: Device, slots: list[Slot], publish_s: float) -> tuple[str, bytes]:
    """A SenML pack (JSON or CBOR) of one or more transmissions, times relative to ``bt``."""
    pack: list[dict] = []
    for t, records in slots:
        for m, v, *_ in records:
            rec = {"n": m, "u": dev.level_unit if m == "water_level" else METRICS[m].unit,
                   "v": v}
            if not pack:
                rec = {"bn": f"{URN}{dev.id}:", "bt": int(t), **rec}
            elif t != pack[0]["bt"]:
                rec["t"] = int(t - pack[0]["bt"])
            pack.append(rec)
    if dev.transport is Transport.SENML_CBOR:
        return senml_topic(dev.id, cbor=True), cbor2.dumps(
            [{_LABEL[k]: x for k, x in r.items()} for r in pack])
    return senml_topic(dev.id), orjson.dumps(pack)


_ENCODERS = {Transport.SENML: _senml, Transport.SENML_CBOR: _senml, Transport.TTS: _tts,
             Transport.CHIRPSTACK: _chirpstack}


def senml_pack(device_id: str, t: float, values: dict[str, tuple[str, float]]) -> bytes:
    """A SenML JSON pack of one transmission at ``t``: metric -> (unit, value)."""
    return orjson.dumps([({"bn": f"{URN}{device_id}:", "bt": t} if i == 0 else {})
                         | {"n": m, "u": u, "v": v}
                         for i, (m, (u, v)) in enumerate(values.items())])


# -- drone flight records -----------------------------------------------------------------
def flight_message(record: dict[str, Any], *, publish_s: float, shift_s: int = 0) -> Message:
    """A drone's flight record as it publishes it, ``started_at`` and ``ended_at`` (and the
    publish time) ``shift_s`` later; its Meta says what ingest stores of it."""
    shifted = {k: (datetime.fromisoformat(v) + timedelta(seconds=shift_s)).isoformat()
               if k in ("started_at", "ended_at") else v for k, v in record.items()}
    started = datetime.fromisoformat(shifted["started_at"]).timestamp()
    meta = Meta(record["drone_id"], publish_s + shift_s, (),
                flight=(record["kind"], started, record.get("field")))
    return flights_topic(record["drone_id"]), orjson.dumps(shifted), meta


class FlightLog:
    """The drone flight records of ``season`` as its drones publish them: spray and survey
    records of ``season.flights`` with ``prefix`` before each drone id (``{prefix}-agras-
    {municipality}``, ``{prefix}-survey-01``). A season simulated without GeoTIFFs has no
    survey records: its surveys are then scheduled here on the season's survey days (as
    :func:`agri.simulator.season.simulate_season` picks them), one block after the other,
    and their records have no ``image``."""

    def __init__(self, season: Season, *, seed: int, prefix: str) -> None:
        records = list(season.flights)
        if not any(r["kind"] == "survey" for r in records):
            rng = np.random.default_rng([seed, zlib.crc32(prefix.encode()), _SURVEYS])
            records += _surveys(season, rng)
        published = [(datetime.fromisoformat(r["ended_at"]).timestamp() + FLIGHT_REPORT_S,
                      r | {"drone_id": f"{prefix}-{r['drone_id']}"}) for r in records]
        published.sort(key=lambda p: p[0])
        self._times = [t for t, _ in published]
        self.records = [r for _, r in published]
        self.drones = sorted({r["drone_id"] for r in self.records})
        self._municipality = {f.id: f.municipality for f in season.fields}

    def served(self) -> dict[str, list[str]]:
        """drone id -> the municipalities of the fields it flies over."""
        out: dict[str, set[str]] = {d: set() for d in self.drones}
        for r in self.records:
            for f in ([r["field"]] if r.get("field") else []) + list(r.get("fields", [])):
                out[r["drone_id"]].add(self._municipality[f])
        return {d: sorted(m) for d, m in out.items()}

    def messages(self, start_s: float, end_s: float, *, shift_s: int = 0) -> Iterator[Message]:
        """Records published in [start_s, end_s) (simulated times), in publish order, with
        every time stamped ``shift_s`` later."""
        first = bisect.bisect_left(self._times, start_s)
        last = bisect.bisect_left(self._times, end_s)
        for t, record in zip(self._times[first:last], self.records[first:last], strict=True):
            yield flight_message(record, publish_s=t, shift_s=shift_s)

    def rows(self, start_s: float, end_s: float) -> list[FlightRow]:
        """What ingest stores of the records published in [start_s, end_s)."""
        return [(meta.device, meta.flight[1], meta.flight[0], meta.flight[2],
                 payload.decode(), meta.publish_s)
                for _, payload, meta in self.messages(start_s, end_s) if meta.flight]


def _surveys(season: Season, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Survey records (no image) on each block's survey days: SURVEY_DAYS_FROM_HEADING from
    the median heading of its fields (the prefecture's latest heading when none heads)."""
    blocks: dict[str, list] = {}
    for f in season.fields:
        blocks.setdefault(f.block.id, []).append(f)
    days: dict[date, list] = {}
    for members in blocks.values():
        known = sorted(h for f in members if (h := season.growth[f.id].phenology.heading))
        median = known[len(known) // 2] if known else date(season.weather.year,
                                                            *PREFECTURE_HEADING_END)
        for offset in SURVEY_DAYS_FROM_HEADING:
            days.setdefault(median + timedelta(days=offset), []).append(members)
    records = []
    for day, flown in sorted(days.items()):
        clock = datetime.combine(day, time(drones.SURVEY_HOUR), drones.TZ) + timedelta(
            minutes=int(rng.integers(0, SURVEY_START_MIN)))
        for members in flown:
            block = members[0].block
            ended = clock + timedelta(seconds=round(drones.SURVEY_OVERHEAD_S + block.outline
                                                    .buffer(drones.MARGIN_M).area
                                                    / drones.SURVEY_SPEED_M2_S))
            records.append({"kind": "survey", "drone_id": SURVEY_DRONE, "block": block.id,
                            "fields": [f.id for f in members], "started_at": clock.isoformat(),
                            "ended_at": ended.isoformat()})
            clock = ended + timedelta(seconds=SURVEY_TURNAROUND_S)
    return records


# -- a run's counts -----------------------------------------------------------------------
@dataclass
class Summary:
    """What a run sent, and what ingest is expected to make of it."""

    mode: str
    messages: int = 0
    duplicates: int = 0  # messages published a second time
    flushed: int = 0  # messages of store-and-forward bursts
    readings: int = 0  # every reading of every message
    good: int = 0  # distinct readings ingest should store
    repeated: int = 0  # good readings of duplicate messages (stored once)
    rejected: int = 0  # readings ingest should reject (range or time limits), every copy
    flights: int = 0  # drone flight records published (backfill: written), each stored once
    rows_written: int = 0  # backfill: rows handed to the writer ...
    rows_new: int = 0  # ... of which not stored before
    seconds: float = 0.0

    def count(self, meta: Meta, *, arrival: float, limits: TimeLimits | None) -> None:
        self.messages += 1
        self.flights += meta.flight is not None
        self.duplicates += meta.duplicate
        self.flushed += meta.flush
        for _, t, _, ok in meta.readings:
            self.readings += 1
            if ok and limits is not None:
                ok = arrival - limits.max_age_s <= t <= arrival + limits.max_future_s
            if not ok:
                self.rejected += 1
            elif meta.duplicate:
                self.repeated += 1
            else:
                self.good += 1

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        rate = self.messages / self.seconds if self.seconds else 0.0
        if self.mode == "backfill":
            return (f"backfill: {self.rows_written:,} readings written in {self.seconds:.1f} s "
                    f"({self.rows_new:,} new, {self.rows_written - self.rows_new:,} "
                    f"stored before) and {self.flights:,} drone flight records")
        return "\n".join([
            f"{self.mode}: {self.messages:,} messages, {self.readings:,} readings and "
            f"{self.flights:,} drone flight records in {self.seconds:.1f} s ({rate:,.0f} "
            f"messages/s); {self.duplicates:,} duplicate messages, {self.flushed:,} in "
            f"store-and-forward bursts",
            f"  expected at ingest: {self.good:,} readings stored, {self.repeated:,} repeated "
            f"in duplicates (stored once), {self.rejected:,} rejected on purpose (spikes "
            f"beyond the physical range, clocks too far off)"])
