"""Publishing a simulated season, in four modes.

- live: real time. The season is replayed from a season date (by default
  today's month-day, or 20 July out of season), every time stamped a whole
  number of days later, so readings carry today's date and pass ingest's time
  checks; the last ``history_h`` hours are sent at once first.
- accelerated: a whole season (or a date range) as fast as the broker takes
  it, stamped at the simulated times; ingest must accept readings that old
  (``AGRI_MAX_AGE_DAYS``), which is checked before anything is sent.
- backfill: the readings and drone flight records ingest would store, written
  straight into the database through :class:`agri.ingest.writer.Writer`, at
  the simulated times.
- load: N registered paddy-water devices (``load-<i>``) publishing SenML at a
  given total rate.

Live and accelerated publish the season's drone flight records beside the
readings (``Fleet.flights``), each when its drone has landed. Every mode
registers the season's fields (upserted, owners created as farmers), devices
and drones (existing ones are kept) first. MQTT goes through the
simulator service account, QoS 1, with at most ``MAX_IN_FLIGHT`` messages
unacknowledged (a paho publisher stalls beyond 65,535, when packet ids wrap)
and never more than the broker's Receive Maximum. Each mode returns a
:class:`Summary` whose expected counts reconcile exactly with the database:
readings published = good (stored) + repeated (in duplicate messages, stored
once) + rejected (beyond the physical range or the time limits); flight records
published = rows in drone_records.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson
import psycopg
from paho.mqtt.client import MQTT_ERR_NO_CONN, MQTT_ERR_SUCCESS, error_string

from agri import mqtt
from agri.api.accounts import add_user
from agri.api.field_registry import import_fields, parse_features
from agri.clock import today_local
from agri.db import connect
from agri.deploy.servers import write_private
from agri.devices import bridges, broker_accounts, provisioning
from agri.devices.topics import senml_topic
from agri.ingest.batch import Batch
from agri.ingest.validate import TimeLimits
from agri.ingest.writer import Writer
from agri.settings import Settings
from agri.simulator.climate import TIMEZONE
from agri.simulator.encoders import (
    CHIRPSTACK_APP,
    TTS_APP,
    TTS_TENANT,
    Message,
    Summary,
    Transport,
    senml_pack,
)
from agri.simulator.fields import fields_geojson
from agri.simulator.sensors import DAY_S, HOUR_S, OFFLINE_HOURS, SKEW_SMALL_S, Fleet, local_midnight

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1_000  # QoS 1 messages unacknowledged at once
CONNECT_TIMEOUT_S = 15.0
DRAIN_TIMEOUT_S = 300.0
LIVE_DRAIN_TIMEOUT_S = 10.0  # when stopped: `agri up` waits 20 s for its children
STALL_WARN_S = 30.0  # log when the broker acknowledges nothing for this long
PROGRESS_EVERY_S = 5.0
LIVE_PROGRESS_EVERY_S = 600.0
DEFAULT_HISTORY_H = 24.0
AGE_MARGIN_S = 6 * HOUR_S  # slack in the age check for the run itself
BACKFILL_BATCH_ROWS = 50_000
PACE_SLACK_S = 0.005  # the load generator waits only when this far ahead
LOAD_LEVEL_M, LOAD_TEMP_C = 0.05, 20.0
TOKENS_FILE = "farmer-tokens.json"


class SimulatorError(ValueError):
    """The simulator cannot run as asked; the message says what to change."""


# -- registration -------------------------------------------------------------------------
def _database(settings: Settings) -> psycopg.Connection:
    try:
        return connect(settings.db_url())
    except psycopg.OperationalError as exc:
        raise SimulatorError(f"cannot reach the database ({exc}): start the platform with "
                             f"`agri up`, or set AGRI_DATABASE_URL") from None


Device = tuple[str, str, str | None, str | None, str | None]  # id, profile, field, DevEUI, owner

# The network servers the simulator plays (simulator/encoders.py): its LoRaWAN
# devices are behind these bridges, as real ones are behind theirs, so ingest
# takes their uplinks only through those applications. The simulator
# publishes as its own account; the bridges' passwords are never used.
SIM_BRIDGES = {Transport.TTS: ("sim-tts", "tts", TTS_APP, TTS_TENANT),
               Transport.CHIRPSTACK: ("sim-chirpstack", "chirpstack", CHIRPSTACK_APP, None)}


def sim_bridge(conn: psycopg.Connection, admin_url: str, transport: Transport) -> str:
    """The name of the active bridge of the application the simulator sends
    ``transport`` uplinks through, added when there is none."""
    name, kind, application, tenant = SIM_BRIDGES[transport]
    known = bridges.list_bridges(conn)
    for bridge in known:
        if (bridge.kind, bridge.application, bridge.tenant, bridge.revoked_at) == (
                kind, application, tenant, None):
            return bridge.name
    taken = {b.name for b in known}
    free = next(n for n in (name, *(f"{name}-{i}" for i in range(2, 1000))) if n not in taken)
    bridges.add(conn, admin_url, name=free, kind=kind, application=application, tenant=tenant)
    conn.commit()
    return free


def register_devices(conn: psycopg.Connection, admin_url: str, devices: list[Device],
                     behind: dict[str, str] | None = None) -> int:
    """Register devices not registered yet, with their broker accounts, or
    behind the bridge ``behind`` names for them (a registered device not
    behind it yet is put there); returns how many were new."""
    behind = behind or {}
    try:
        known = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, dev_eui, bridge FROM devices WHERE id = ANY(%s)",
            ([d[0] for d in devices],)).fetchall()}
    except psycopg.errors.UndefinedTable:
        raise SimulatorError("the database has no tables yet: run `agri db migrate`") from None
    new: dict[str | None, list[Device]] = {}
    for device_id, profile, field_id, eui, owner in devices:
        if device_id in known:
            if eui and known[device_id][0] != eui:
                logger.warning("device %s is registered with DevEUI %s, not %s: its ChirpStack "
                               "uplinks will be rejected", device_id, known[device_id][0], eui)
            bridge = behind.get(device_id)
            if bridge is not None and known[device_id][1] is None:
                bridges.attach(conn, admin_url, name=bridge, device_id=device_id)
            continue
        new.setdefault(behind.get(device_id), []).append(
            (device_id, profile, field_id, eui, owner))
    added = sum(provisioning.add_many(conn, admin_url, group, bridge=bridge)
                for bridge, group in new.items())
    conn.commit()
    return added


def _contractor(conn: psycopg.Connection, drone_id: str, regions: list[str]) -> str:
    """The owner of a contract drone: a farmer who sprays and surveys the
    fields of ``regions`` (municipalities) under contract, as Japan's
    contracting farms and JA services do. Created once, without a token
    anyone holds."""
    name = f"{drone_id}-operator"
    if not conn.execute("SELECT 1 FROM users WHERE name = %s", (name,)).fetchone():
        add_user(conn, name=name, role="farmer", regions=regions)
    return name


def register(settings: Settings, fleet: Fleet) -> None:
    """Import the season's fields (creating their farmers), register its devices and drones."""
    with _database(settings) as conn:
        try:
            _, created = import_fields(conn, parse_features(fields_geojson(fleet.season.fields)),
                                       create_owners=True)
        except psycopg.errors.UndefinedTable:
            raise SimulatorError("the database has no tables yet: run `agri db migrate`") \
                from None
        conn.commit()
        devices: list[Device] = [(d.id, d.profile, d.field, d.dev_eui, None)
                                 for d in fleet.devices]
        devices += [(d, "drone", None, None, _contractor(conn, d, regions))
                    for d, regions in fleet.flights.served().items()]
        admin = settings.broker_url("admin")
        names = {t: sim_bridge(conn, admin, t)
                 for t in {d.transport for d in fleet.devices} & SIM_BRIDGES.keys()}
        behind = {d.id: names[d.transport] for d in fleet.devices if d.transport in names}
        added = register_devices(conn, admin, devices, behind)
    if created:
        path = fleet.season.out / TOKENS_FILE
        tokens = orjson.loads(path.read_bytes()) if path.exists() else {}
        write_private(path, orjson.dumps(tokens | created, option=orjson.OPT_INDENT_2))
        logger.info("created %d farmers; their API tokens are in %s", len(created), path)
    logger.info("registered %d fields and %d new devices (%d sensors and %d drones in the "
                "fleet)", len(fleet.season.fields), added, len(fleet.devices),
                len(fleet.flights.drones))


# -- MQTT ---------------------------------------------------------------------------------
class Publisher:
    """One MQTT connection as the simulator account, with a bounded in-flight window."""

    def __init__(self, url: str, *, client_id: str, qos: int = 1,
                 window: int = MAX_IN_FLIGHT, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        self.url, self.qos, self.window, self.drain_timeout_s = url, qos, window, drain_timeout_s
        self.client = mqtt.make_client(url, client_id=client_id)
        self.client.max_inflight_messages_set(window)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._refused: str | None = None
        self.in_flight = self.published = self.acked = self.failed = 0

    def __enter__(self) -> Publisher:
        address = mqtt.parse_url(self.url)
        try:
            mqtt.connect(self.client)
        except OSError as exc:
            raise SimulatorError(f"cannot reach the MQTT broker at {address.host}:"
                                 f"{address.port} ({exc}): start the platform with `agri up`, "
                                 f"or set AGRI_MQTT_URL") from None
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT_S) or self._refused:
            self.client.loop_stop()
            raise SimulatorError(f"the MQTT broker did not accept the simulator "
                                 f"({self._refused or 'no answer'}): check AGRI_MQTT_URL")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.drain(self.drain_timeout_s)
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            most = getattr(properties, "ReceiveMaximum", None)
            if most and most < self.window:
                with self._cond:
                    self.window = most
                client.max_inflight_messages_set(most)
        self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            self.in_flight -= 1
            self.acked += 1
            if reason_code.is_failure:
                self.failed += 1
                if self.failed == 1:
                    logger.error("the broker refused a message (%s): is AGRI_MQTT_URL the "
                                 "simulator account?", reason_code)
            self._cond.notify()

    def publish(self, topic: str, payload: bytes) -> None:
        with self._cond:
            while self.in_flight >= self.window:
                if not self._cond.wait(STALL_WARN_S):
                    logger.warning("the broker acknowledged nothing for %.0f s (%d messages in "
                                   "flight); waiting", STALL_WARN_S, self.in_flight)
            self.in_flight += 1
        info = self.client.publish(topic, payload, qos=self.qos)
        if info.rc == MQTT_ERR_NO_CONN and self.qos == 0:  # dropped: QoS 0 is not queued
            with self._cond:
                self.in_flight -= 1
                self.failed += 1
        elif info.rc not in (MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN):
            raise SimulatorError(f"publish on {topic} failed: {error_string(info.rc)}")
        self.published += 1

    def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Wait until the broker has acknowledged every message."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.in_flight > 0:
                if not self._cond.wait(max(deadline - time.monotonic(), 0.0)) \
                        and time.monotonic() >= deadline:
                    raise SimulatorError(f"{self.in_flight} messages still unacknowledged "
                                         f"after {timeout_s:.0f} s")


def _messages(fleet: Fleet, start_s: float, end_s: float, *, shift_s: int = 0
              ) -> Iterator[Message]:
    """The sensors' messages and the drones' flight records, in publish order."""
    return heapq.merge(fleet.messages(start_s, end_s, shift_s=shift_s),
                       fleet.flights.messages(start_s, end_s, shift_s=shift_s),
                       key=lambda m: m[2].publish_s)


def _simulator_url(settings: Settings) -> str:
    return broker_accounts.account_url(settings.broker_url("simulator"), "simulator")


def _client_id(mode: str) -> str:
    return f"agri-simulator-{mode}-{os.getpid()}"


def _limits(settings: Settings) -> TimeLimits:
    return TimeLimits(settings.max_age_days * DAY_S, settings.max_future_s)


# -- modes --------------------------------------------------------------------------------
def season_window(fleet: Fleet, first: date, last: date) -> tuple[float, float]:
    """[start, end) seconds of the days ``first``..``last``, checked against the fleet."""
    start, end = local_midnight(first), local_midnight(last) + DAY_S
    if end <= start or start < fleet.span[0] or end > fleet.span[1] + 1:
        raise SimulatorError(f"choose dates from {_day(fleet.span[0])} to "
                             f"{_day(fleet.span[1] - DAY_S)}, the first before the last")
    return start, end


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, ZoneInfo(TIMEZONE)).date().isoformat()


def check_age(settings: Settings, start_s: float, end_s: float, now: float) -> None:
    """Refuse windows whose readings ingest would reject as too old or in the future."""
    if end_s > now:
        raise SimulatorError(f"the window ends on {_day(end_s - 1)}, in the future: readings "
                             f"stamped ahead of now are rejected; choose an earlier --end or "
                             f"--year")
    oldest = start_s - OFFLINE_HOURS[1] * HOUR_S - SKEW_SMALL_S[1]  # flushed, skewed readings
    days = (now - oldest + AGE_MARGIN_S) / DAY_S
    if days > settings.max_age_days:
        raise SimulatorError(
            f"readings from {_day(start_s)} on are up to {days:.0f} days old, and ingest accepts "
            f"readings at most {settings.max_age_days:g} days old: set "
            f"AGRI_MAX_AGE_DAYS={math.ceil(days) + 1} for the ingest workers and for this "
            f"command, or choose a later --year or --start")


def run_accelerated(settings: Settings, fleet: Fleet, *, first: date, last: date) -> Summary:
    """Publish the days ``first``..``last`` through the broker as fast as it takes them."""
    start_s, end_s = season_window(fleet, first, last)
    check_age(settings, start_s, end_s, time.time())
    register(settings, fleet)
    summary, limits = Summary("accelerated"), _limits(settings)
    began = time.monotonic()
    next_log = began + PROGRESS_EVERY_S
    with Publisher(_simulator_url(settings), client_id=_client_id("accel")) as pub:
        for topic, payload, meta in _messages(fleet, start_s, end_s):
            pub.publish(topic, payload)
            summary.count(meta, arrival=time.time(), limits=limits)
            if time.monotonic() >= next_log:
                next_log += PROGRESS_EVERY_S
                elapsed = time.monotonic() - began
                logger.info("accelerated: %s reached (%.0f %%), %d messages, %.0f/s",
                            _day(meta.publish_s), 100 * (meta.publish_s - start_s)
                            / (end_s - start_s), summary.messages,
                            summary.messages / max(elapsed, 1e-9))
    summary.seconds = time.monotonic() - began
    _warn_refused(pub)
    return summary


def run_backfill(settings: Settings, fleet: Fleet, *, first: date, last: date) -> Summary:
    """Write the readings and drone flight records of ``first``..``last`` into the database,
    stamped as simulated."""
    start_s, end_s = season_window(fleet, first, last)
    register(settings, fleet)
    summary = Summary("backfill")
    began = time.monotonic()
    writer = Writer(settings.db_url())
    try:
        for rows in fleet.iter_rows(start_s, end_s, chunk_rows=BACKFILL_BATCH_ROWS):
            written = writer.write(Batch(rows=rows))
            summary.rows_written += len(rows)
            summary.rows_new += written.stored
            logger.info("backfill: %s reached, %d readings written", _day(rows[-1][2]),
                        summary.rows_written)
        flights = fleet.flights.rows(start_s, end_s)
        if flights:
            writer.write(Batch(flights=flights))
        summary.flights = len(flights)
    finally:
        writer.close()
    summary.seconds = time.monotonic() - began
    return summary


def run_live(settings: Settings, fleet: Fleet, *, from_date: date, stop: threading.Event,
             history_h: float = DEFAULT_HISTORY_H, hours: float | None = None) -> Summary:
    """Replay the season from ``from_date`` in real time until ``stop`` is set, ``hours``
    have passed, or the simulated season ends."""
    shift_s = (today_local() - from_date).days * DAY_S
    now = time.time()
    sim_now = now - shift_s
    if not fleet.span[0] <= sim_now < fleet.span[1]:
        raise SimulatorError(f"--from-date must lie between {_day(fleet.span[0])} and "
                             f"{_day(fleet.span[1] - DAY_S)}")
    register(settings, fleet)
    until = now + hours * HOUR_S if hours is not None else math.inf
    summary, limits = Summary("live"), _limits(settings)
    logger.info("live: season %s replayed from %s as today; %d devices, %.0f h of history "
                "first", fleet.season.weather.year, from_date, len(fleet.devices), history_h)
    began = time.monotonic()
    next_log = began + LIVE_PROGRESS_EVERY_S
    with Publisher(_simulator_url(settings), client_id=_client_id("live"),
                   drain_timeout_s=LIVE_DRAIN_TIMEOUT_S) as pub:
        for topic, payload, meta in _messages(fleet, max(sim_now - history_h * HOUR_S,
                                                         fleet.span[0]), fleet.span[1],
                                              shift_s=shift_s):
            if meta.publish_s >= until or stop.wait(max(meta.publish_s - time.time(), 0.0)):
                break
            pub.publish(topic, payload)
            summary.count(meta, arrival=time.time(), limits=limits)
            if time.monotonic() >= next_log:
                next_log += LIVE_PROGRESS_EVERY_S
                logger.info("live: %d messages, %d readings so far", summary.messages,
                            summary.readings)
        else:
            logger.info("live: the simulated season is over")
            if hours is None:
                stop.wait()
    summary.seconds = time.monotonic() - began
    _warn_refused(pub)
    return summary


def run_load(settings: Settings, *, devices: int, rate: float, seconds: float,
             qos: int = 1, prefix: str = "load", stop: threading.Event | None = None) -> Summary:
    """``devices`` paddy-water devices publishing ``rate`` messages/s in total (two readings
    each) for ``seconds``: ``round(rate * seconds)`` messages."""
    if devices < 1 or rate <= 0 or seconds <= 0:
        raise SimulatorError("--devices, --rate and --seconds must be positive")
    ids = [f"{prefix}-{i}" for i in range(devices)]
    with _database(settings) as conn:
        register_devices(conn, settings.broker_url("admin"),
                         [(i, "paddy-water", None, None, None) for i in ids])
    stop = stop or threading.Event()
    summary = Summary("load")
    total = round(rate * seconds)
    t0 = float(int(time.time()))
    with Publisher(_simulator_url(settings), client_id=_client_id("load"),
                   qos=qos) as pub:
        began = time.monotonic()
        next_log = began + PROGRESS_EVERY_S
        for j in range(total):
            ahead = j / rate - (time.monotonic() - began)
            if (ahead > PACE_SLACK_S and stop.wait(ahead)) or stop.is_set():
                break
            device = ids[j % devices]
            pub.publish(senml_topic(device), senml_pack(device, round(t0 + j / rate, 6), {
                "water_level": ("m", LOAD_LEVEL_M),
                "water_temp": ("Cel", LOAD_TEMP_C + (j % 100) / 100)}))
            summary.messages += 1
            summary.readings += 2
            summary.good += 2
            if time.monotonic() >= next_log:
                next_log += PROGRESS_EVERY_S
                logger.info("load: %d of %d messages", summary.messages, total)
    summary.seconds = time.monotonic() - began
    _warn_refused(pub)
    return summary


def _warn_refused(pub: Publisher) -> None:
    if pub.failed:
        logger.error("%d messages were refused by the broker", pub.failed)
